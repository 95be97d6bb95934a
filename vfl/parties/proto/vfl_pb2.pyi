from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Chunk(_message.Message):
    __slots__ = ("job_id", "sender", "key", "message_id", "index", "total", "total_bytes", "data")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sender: str
    key: str
    message_id: str
    index: int
    total: int
    total_bytes: int
    data: bytes
    def __init__(self, job_id: _Optional[str] = ..., sender: _Optional[str] = ..., key: _Optional[str] = ..., message_id: _Optional[str] = ..., index: _Optional[int] = ..., total: _Optional[int] = ..., total_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class SendReply(_message.Message):
    __slots__ = ("duplicate",)
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    duplicate: bool
    def __init__(self, duplicate: _Optional[bool] = ...) -> None: ...

class Names(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("job_id", "sender", "protocol", "params", "roles", "datasets")
    class RolesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class DatasetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Names
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Names, _Mapping]] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sender: str
    protocol: str
    params: bytes
    roles: _containers.ScalarMap[str, str]
    datasets: _containers.MessageMap[str, Names]
    def __init__(self, job_id: _Optional[str] = ..., sender: _Optional[str] = ..., protocol: _Optional[str] = ..., params: _Optional[bytes] = ..., roles: _Optional[_Mapping[str, str]] = ..., datasets: _Optional[_Mapping[str, Names]] = ...) -> None: ...

class JobRef(_message.Message):
    __slots__ = ("job_id", "sender")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sender: str
    def __init__(self, job_id: _Optional[str] = ..., sender: _Optional[str] = ...) -> None: ...

class FailureReport(_message.Message):
    __slots__ = ("job_id", "sender", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sender: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., sender: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "protocol", "role", "peer", "state", "created_at", "started_at", "finished_at", "error", "progress", "result")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    protocol: str
    role: str
    peer: str
    state: str
    created_at: float
    started_at: float
    finished_at: float
    error: str
    progress: str
    result: bytes
    def __init__(self, job_id: _Optional[str] = ..., protocol: _Optional[str] = ..., role: _Optional[str] = ..., peer: _Optional[str] = ..., state: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., error: _Optional[str] = ..., progress: _Optional[str] = ..., result: _Optional[bytes] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ("sender",)
    SENDER_FIELD_NUMBER: _ClassVar[int]
    sender: str
    def __init__(self, sender: _Optional[str] = ...) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("party", "version", "running_jobs", "insecure", "compute")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    INSECURE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    party: str
    version: str
    running_jobs: int
    insecure: bool
    compute: str
    def __init__(self, party: _Optional[str] = ..., version: _Optional[str] = ..., running_jobs: _Optional[int] = ..., insecure: _Optional[bool] = ..., compute: _Optional[str] = ...) -> None: ...

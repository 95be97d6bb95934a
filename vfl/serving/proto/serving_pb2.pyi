from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ids(_message.Message):
    __slots__ = ("ints", "strings")
    INTS_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    ints: _containers.RepeatedScalarFieldContainer[int]
    strings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ints: _Optional[_Iterable[int]] = ..., strings: _Optional[_Iterable[str]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ("sender", "model_id")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    sender: str
    model_id: str
    def __init__(self, sender: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("party", "model_id", "version", "kind", "role", "width")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    party: str
    model_id: str
    version: str
    kind: str
    role: str
    width: int
    def __init__(self, party: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[str] = ..., kind: _Optional[str] = ..., role: _Optional[str] = ..., width: _Optional[int] = ...) -> None: ...

class PartialsRequest(_message.Message):
    __slots__ = ("sender", "model_id", "version", "ids")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    sender: str
    model_id: str
    version: str
    ids: Ids
    def __init__(self, sender: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[str] = ..., ids: _Optional[_Union[Ids, _Mapping]] = ...) -> None: ...

class PartialsReply(_message.Message):
    __slots__ = ("version", "width", "values", "found")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    version: str
    width: int
    values: bytes
    found: bytes
    def __init__(self, version: _Optional[str] = ..., width: _Optional[int] = ..., values: _Optional[bytes] = ..., found: _Optional[bytes] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("model_id", "ids", "features_json", "request_id")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    ids: Ids
    features_json: str
    request_id: str
    def __init__(self, model_id: _Optional[str] = ..., ids: _Optional[_Union[Ids, _Mapping]] = ..., features_json: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ScoreReply(_message.Message):
    __slots__ = ("request_id", "model_id", "version", "scores", "missing", "host_errors", "versions")
    class HostErrorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    HOST_ERRORS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_id: str
    version: str
    scores: _containers.RepeatedScalarFieldContainer[float]
    missing: _containers.RepeatedScalarFieldContainer[str]
    host_errors: _containers.ScalarMap[str, str]
    versions: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[str] = ..., scores: _Optional[_Iterable[float]] = ..., missing: _Optional[_Iterable[str]] = ..., host_errors: _Optional[_Mapping[str, str]] = ..., versions: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StageRequest(_message.Message):
    __slots__ = ("sender", "model_id", "action", "version", "dry_run")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    sender: str
    model_id: str
    action: str
    version: str
    dry_run: bool
    def __init__(self, sender: _Optional[str] = ..., model_id: _Optional[str] = ..., action: _Optional[str] = ..., version: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class StageReply(_message.Message):
    __slots__ = ("party", "previous", "version")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    party: str
    previous: str
    version: str
    def __init__(self, party: _Optional[str] = ..., previous: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

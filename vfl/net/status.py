"""The one table between vfl errors and gRPC (and HTTP) status codes.

A service that refuses a request answers with the error's status code and names the kind of
vfl error in the trailing metadata ``vfl-error``; the client raises the same kind of error
again, naming who refused what. Failures with no kind are the transport's own (unreachable,
deadline), which each client reports with its own retry story.
"""

from __future__ import annotations

import grpc

from vfl.errors import (
    ConfigError,
    DataError,
    PeerError,
    PeerTimeoutError,
    PolicyError,
    ProtocolError,
    UnknownModelError,
    VflError,
)

ERROR_KIND = "vfl-error"  # trailing metadata: which vfl error a refusal maps to
ENDED = "ended"  # a party's role of the job failed or was cancelled: the detail is its own reason

# the error a handler raised -> (gRPC status code, kind, HTTP status); the first matching row wins
STATUS: list[tuple[type[Exception], grpc.StatusCode, str, int]] = [
    (PolicyError, grpc.StatusCode.PERMISSION_DENIED, "policy", 403),
    (UnknownModelError, grpc.StatusCode.NOT_FOUND, "unknown-model", 404),
    (ProtocolError, grpc.StatusCode.INVALID_ARGUMENT, "protocol", 400),
    (DataError, grpc.StatusCode.FAILED_PRECONDITION, "data", 422),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION, "data", 422),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED, "peer", 504),
    (PeerError, grpc.StatusCode.UNAVAILABLE, "peer", 502),
]


class PeerUnreachableError(PeerError):
    """The peer's service could not be reached (down, network, or TLS handshake refused)."""


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and kind a service answers `exc` with (INTERNAL and no kind if unlisted)."""
    return next(((code, kind) for cls, code, kind, _ in STATUS if isinstance(exc, cls)),
                (grpc.StatusCode.INTERNAL, ""))


def http_status_of(exc: Exception) -> int:
    """The HTTP status an HTTP endpoint answers `exc` with (500 if unlisted)."""
    return next((status for cls, _, _, status in STATUS if isinstance(exc, cls)), 500)


def refusal(exc: grpc.RpcError, where: str, what: str) -> VflError | None:
    """The vfl error a service's refusal names, or None for a failure of the transport.

    Parameters
    ----------
    exc
        The failed call.
    where
        Who answered, e.g. ``"peer 'partner' (10.0.0.2:50051)"``.
    what
        What was asked, e.g. ``"starting job 'j1'"``.
    """
    kind = dict(exc.trailing_metadata() or ()).get(ERROR_KIND)
    detail: str = exc.details() or ""
    if kind == "policy":
        return PolicyError(f"{where} refused {what}: {detail}")
    if kind == "protocol":
        return ProtocolError(f"{where} rejected {what}: {detail}")
    if kind == "unknown-model":
        return UnknownModelError(f"{where}: {detail}")
    if kind == "data":
        return DataError(f"{where}: {detail}")
    if kind == ENDED:
        return PeerError(f"{where}: {detail}")
    if kind == "peer":  # `where` answered, but a party behind it failed: keep its account
        cls = PeerTimeoutError if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED else PeerError
        return cls(f"{where} could not answer {what}: {detail}")
    return None

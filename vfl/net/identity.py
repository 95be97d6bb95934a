"""Who is calling: the one check of a caller's verified certificate identity.

Every RPC handler of the party service and of serving asks here; a name a request merely
claims is never trusted on its own.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc


class IdentityRefused(Exception):
    """The caller is refused: `code` is the gRPC status to answer with, the message says why."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def caller_identity(
    context: grpc.ServicerContext,
    claimed: str | None = None,
    known: Callable[[str], bool] | None = None,
    owner: str = "",
) -> str:
    """The common name of the caller's client certificate, verified by the TLS handshake.

    Parameters
    ----------
    context
        The RPC's context.
    claimed
        The name the request says it comes from; None if it claims none.
    known
        Whether a verified identity may call at all (e.g. is a configured peer of `owner`).
    owner
        This party's name, for the refusal message.

    Returns
    -------
    str
        The verified identity.

    Raises
    ------
    IdentityRefused
        No verified certificate (UNAUTHENTICATED); an identity `known` refuses, or a request
        claiming another name than its certificate's (PERMISSION_DENIED).
    """
    names = context.auth_context().get("x509_common_name") or []
    if not names:
        raise IdentityRefused(grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate")
    identity = names[0].decode("utf-8", "replace")
    if known is not None and not known(identity):
        raise IdentityRefused(grpc.StatusCode.PERMISSION_DENIED,
                              f"certificate identity '{identity}' is not a configured peer of '{owner}'")
    if claimed is not None and claimed != identity:
        raise IdentityRefused(grpc.StatusCode.PERMISSION_DENIED,
                              f"request claims to come from '{claimed}' but the certificate identifies '{identity}'")
    return str(identity)

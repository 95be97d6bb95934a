"""gRPC channels and server settings, the same for the party service and for serving.

A client connects with mutual TLS and insists that the server's certificate names the party it
means to reach: reaching the right address is not enough, the service there must *be* that
party. Without TLS files (local experiments only) the channel is plaintext.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from vfl.crypto.tls import TlsFiles, certificate_identity
from vfl.errors import ConfigError

# a peer that restarts is reached again within a second, not after minutes of backoff
_RECONNECT: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def message_limits(max_message: int) -> list[tuple[str, Any]]:
    """gRPC options bounding one message either way to `max_message` bytes."""
    return [("grpc.max_send_message_length", max_message), ("grpc.max_receive_message_length", max_message)]


def open_channel(address: str, server_name: str, tls: TlsFiles | None, max_message: int) -> grpc.Channel:
    """A channel to `server_name`'s service at `address`.

    Parameters
    ----------
    address
        ``host:port`` of the service.
    server_name
        The party the service must be: its certificate must carry this name.
    tls
        This party's CA, certificate and key; None for a plaintext channel.
    max_message
        The largest message sent or received, in bytes.

    Returns
    -------
    grpc.Channel
        A channel that does not retry by itself (callers retry with idempotent ids).
    """
    options = [*message_limits(max_message), ("grpc.enable_retries", 0), *_RECONNECT]
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    ca, cert, key = tls.read()
    credentials = grpc.ssl_channel_credentials(ca, key, cert)
    return grpc.secure_channel(address, credentials,
                               options=[*options, ("grpc.ssl_target_name_override", server_name)])


def server_credentials(tls: TlsFiles, name: str) -> grpc.ServerCredentials:
    """Mutual-TLS credentials of party `name`'s service: clients must present a certificate.

    Raises
    ------
    ConfigError
        The certificate names another party than `name` (or a file is missing).
    """
    ca, cert, key = tls.read()
    identity = certificate_identity(cert)
    if identity != name:
        raise ConfigError(f"tls.cert {Path(tls.cert)} identifies '{identity}', but this party is '{name}'")
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

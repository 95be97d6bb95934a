"""The one way a party runs an HTTP endpoint: a threaded server on an address, optionally over
mutual TLS with the party's own certificate (clients must present a certificate of the
federation's CA), each connection's handshake in its own thread, the caller named by the
common name of its verified certificate. Serving's HTTP/JSON API and the metrics endpoint are
both built on it.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vfl.crypto.tls import TlsFiles
from vfl.errors import ConfigError

log = logging.getLogger("vfl.http")

HTTP_IDLE_TIMEOUT = 30.0  # seconds an HTTP connection may stay silent


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (TLS handshake refused, client gone): one log line."""
        log.warning("http %s: connection ended: %s", client_address[0], sys.exc_info()[1])


class TlsAwareHandler(BaseHTTPRequestHandler):
    """A request handler whose TLS handshake runs in the connection's own thread, never in the
    accept loop (where one silent client would block every other)."""

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # so an unparsable request line still gets a status line
    timeout = HTTP_IDLE_TIMEOUT  # a silent or stalled client loses its connection

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()  # a failure ends this connection (HttpServer.handle_error)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http %s: " + format, self.client_address[0], *args)

    def client_name(self) -> str:
        """The common name of the caller's verified certificate, or ``http:<address>``."""
        getpeercert = getattr(self.connection, "getpeercert", None)
        cert = getpeercert() if getpeercert else None
        for rdn in (cert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return f"http:{self.client_address[0]}"


class HttpEndpoint:
    """A running HTTP endpoint: its port, and `close` to stop it."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.port = int(server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_http(listen: str, handler: type[BaseHTTPRequestHandler], tls: TlsFiles | None,
               field: str, thread_name: str) -> HttpEndpoint:
    """Listen on `listen` (``host:port``) and serve `handler` in a background thread.

    Parameters
    ----------
    listen : str
        ``host:port``; an empty host is 127.0.0.1.
    handler : type
        The request handler (a `TlsAwareHandler` when `tls` is given).
    tls : TlsFiles or None
        The party's own files: mutual TLS, a client certificate of the CA required. None: plain HTTP.
    field : str
        The config field that named the address, for errors.
    thread_name : str
        The serving thread's name.

    Raises
    ------
    ConfigError
        The address cannot be listened on (the message names `field`).
    """
    host, _, port = listen.rpartition(":")
    try:
        server = HttpServer((host or "127.0.0.1", int(port)), handler)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{field}: cannot listen on {listen}: {exc}") from None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
        context.load_cert_chain(str(tls.cert), str(tls.key))
        context.verify_mode = ssl.CERT_REQUIRED
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, name=thread_name, daemon=True).start()
    return HttpEndpoint(server)

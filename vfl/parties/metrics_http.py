"""The metrics port of ``vfl serve`` (``metrics.listen``): ``GET /metrics`` for Prometheus,
``GET /v1/ready`` for readiness probes and ``GET /v1/health`` for liveness.

Over mutual TLS by default (the party's own certificate; a caller must present a certificate
of the federation's CA). ``/metrics`` and ``/v1/ready`` answer only the party itself (its own
certificate: ``vfl health --ready``) and the identities in ``metrics.clients``; anyone else is
refused with 403 and one log line. ``/v1/health`` answers any caller that got through the
handshake, with nothing but ``{"status": "ok"}``.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc

from vfl.errors import ConfigError, PeerError
from vfl.net.http_server import HttpEndpoint, TlsAwareHandler, start_http
from vfl.parties import policy
from vfl.parties.config import PartyConfig
from vfl.parties.metrics import exposition

if TYPE_CHECKING:
    from vfl.parties.service import PartyService

log = logging.getLogger("vfl.metrics")


class _Off:
    def close(self) -> None:
        pass


def serve_metrics(service: PartyService, server: grpc.Server) -> HttpEndpoint | _Off:
    """A `ServicePart`: start the metrics endpoint on ``metrics.listen`` (nothing if unset).

    Raises
    ------
    ConfigError
        The address cannot be listened on.
    """
    config = service.config.metrics
    if config.listen is None:
        return _Off()
    tls = service.config.tls_files() if config.tls else None
    endpoint = start_http(config.listen, _handler(service), tls, "metrics.listen", f"vfl-{service.name}-metrics")
    log.info("%s: metrics on %s (%s)", service.name, config.listen, "mutual TLS" if tls else "plain HTTP")
    return endpoint


def _handler(service: PartyService) -> type[TlsAwareHandler]:
    allowed = service.config.metrics.clients

    class Handler(TlsAwareHandler):
        server_version = "vfl-metrics"

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status >= 400:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode())

        def _allowed(self) -> bool:
            client = self.client_name()
            if client == service.name or policy.matches(allowed, client):
                return True
            log.warning("%s: metrics request for %r from %r refused (not in metrics.clients)",
                        service.name, self.path[:64], client)
            self._json(403, {"error": f"'{client}' is not in metrics.clients of '{service.name}'"})
            return False

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            path = urlsplit(self.path).path
            if path == "/v1/health":
                self._json(200, {"status": "ok"})
            elif path == "/v1/ready":
                if self._allowed():
                    unmet = service.readiness.unmet()
                    self._json(503 if unmet else 200,
                               {"status": "not ready", "unmet": unmet} if unmet else {"status": "ready"})
            elif path == "/metrics":
                if self._allowed():
                    self._send(200, *exposition(service.metrics))
            else:
                self._json(404, {"error": "no such path (GET /metrics, /v1/ready, /v1/health)"})

    return Handler


def ask_ready(config: PartyConfig, timeout: float = 10.0) -> tuple[bool, dict[str, Any]]:
    """Ask this party's own service, on its metrics port and with its own certificate, whether
    it is ready (``vfl health --ready``).

    Returns
    -------
    (bool, dict)
        Ready or not, and the answer (``{"status": "ready"}``, or the unmet conditions).

    Raises
    ------
    ConfigError
        ``metrics.listen`` is not set.
    PeerError
        The metrics port did not answer (the message names the address).
    """
    listen = config.metrics.listen
    if listen is None:
        raise ConfigError(f"party '{config.name}': metrics.listen is not set; readiness is answered "
                          "on the metrics port")
    host, _, port = listen.rpartition(":")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "::1"}.get(host, host.strip("[]"))
    try:
        sock = socket.create_connection((host, int(port)), timeout)
        tls = config.tls_files() if config.metrics.tls else None
        if tls is not None:  # the server must hold this party's own certificate
            context = ssl.create_default_context(cafile=str(tls.ca))
            context.load_cert_chain(str(tls.cert), str(tls.key))
            sock = context.wrap_socket(sock, server_hostname=config.name)
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        connection.sock = sock
        connection.request("GET", "/v1/ready")
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise PeerError(f"the metrics port of '{config.name}' at {listen} did not answer: "
                        f"{type(exc).__name__}: {exc}") from None
    if response.status not in (200, 503):
        raise PeerError(f"the metrics port of '{config.name}' at {listen} answered {response.status}: "
                        f"{body.get('error', body)}")
    return response.status == 200, body

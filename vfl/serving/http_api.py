"""The HTTP/JSON adapter of serving: ``POST /v1/models/<model>/score``, ``GET /v1/metrics``
and ``GET /v1/health`` on the guest, optionally over mutual TLS. Callers are the certificate
identities in ``serving.clients``; refusals get the HTTP status of `vfl.net.status`.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from vfl.errors import ConfigError, PolicyError, ProtocolError
from vfl.names import check_name
from vfl.net.http_server import HTTP_IDLE_TIMEOUT, HttpEndpoint, TlsAwareHandler, start_http
from vfl.net.status import http_status_of
from vfl.serving.cache import Serving
from vfl.serving.wire import features_from_json, ids_from_json, parse_json

log = logging.getLogger("vfl.serving")

MAX_BODY = 64 << 20


def serve_http(serving: Serving) -> HttpEndpoint | None:
    """Start `serving`'s HTTP/JSON endpoint on ``serving.http_listen`` (None if not configured).

    Raises
    ------
    ConfigError
        The address cannot be listened on, or ``http_tls`` is set without the party's TLS files.
    """
    listen = serving.config.serving.http_listen
    if listen is None:
        return None
    tls = None
    if serving.config.serving.http_tls:
        tls = serving.config.tls_files()
        if tls is None:
            raise ConfigError("serving.http_tls needs the party's `tls` section")
    endpoint = start_http(listen, _http_handler(serving), tls, "serving.http_listen", f"vfl-{serving.name}-http")
    log.info("%s: HTTP scoring endpoint on %s (%s)", serving.name, listen,
             "mutual TLS" if tls is not None else "plain HTTP")
    return endpoint


_SCORE_PATH = re.compile(r"^/v1/models/([^/]*)/score$")


def _http_handler(serving: Serving) -> type[TlsAwareHandler]:
    class Handler(TlsAwareHandler):
        server_version = "vfl-serving"

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The stdlib's answers to requests it cannot parse: a client's mistake is a 4xx
            (an unknown method 405, an unknown HTTP version 400), logged once."""
            code = {501: 405, 505: 400}.get(code, code)
            log.warning("%s: malformed HTTP request from %s refused: %d", serving.name,
                        self.client_address[0], code)
            self.close_connection = True
            super().send_error(code, message if code != 405 else "method not allowed", explain)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status >= 400:  # the body may be unread: never parse its rest as a request
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _fail(self, client: str, model_id: str, request_id: str, exc: Exception, n_ids: int = 0) -> None:
            status = http_status_of(exc)
            serving.failed(client, model_id, request_id, str(status), exc, n_ids, adapter="http")
            if status == 500:
                log.error("serving: unexpected error", exc_info=exc)
                self._send(500, {"error": "internal error (details in the serving party's log)",
                                 "kind": "internal"})
            else:
                self._send(status, {"error": str(exc), "kind": type(exc).__name__})

        def _body(self) -> bytes:
            raw = self.headers.get("Content-Length") or ""
            if self.headers.get("Transfer-Encoding") or not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
                raise ProtocolError("a Content-Length header with the body's size in bytes is required")
            length = int(raw)
            if length <= 0 or length > MAX_BODY:
                raise ProtocolError(f"a JSON body of 1..{MAX_BODY} bytes is required")
            try:
                data = self.rfile.read(length)
            except TimeoutError:
                raise ProtocolError(f"the body did not arrive within {HTTP_IDLE_TIMEOUT:g}s") from None
            if len(data) != length:
                raise ProtocolError(f"the body has {len(data)} of the {length} bytes of its Content-Length")
            return data

        def _not_found(self) -> None:
            self._send(404, {"error": "no such path (POST /v1/models/<model>/score, GET /v1/metrics, "
                                      "GET /v1/health)"})

        def _refuse_stranger(self, client: str) -> bool:
            if serving.allows(client):  # plain HTTP: only with clients ["*"]
                return False
            self._fail(client, "", "", PolicyError(f"'{client}' is not in serving.clients of '{serving.name}'"))
            return True

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if self.path == "/v1/health":
                self._send(200, serving.health())
            elif self.path == "/v1/metrics":
                if not self._refuse_stranger(self.client_name()):
                    self._send(200, serving.metrics.snapshot())
            else:
                self._not_found()

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            match = _SCORE_PATH.match(self.path)
            if match is None:
                self._not_found()
                return
            client = self.client_name()
            if self._refuse_stranger(client):
                return
            model_id, request_id, n_ids = match.group(1)[:128], "", 0
            try:
                check_name(model_id, "model id in the path")
                body = parse_json(self._body())
                if not isinstance(body, dict):
                    raise ProtocolError("the body must be a JSON object")
                unknown = set(body) - {"ids", "features", "request_id"}
                if unknown:
                    raise ProtocolError(f"unknown field(s) {sorted(unknown)}")
                given_id = body.get("request_id") or ""
                if not isinstance(given_id, str):
                    raise ProtocolError("request_id must be a string")
                request_id = given_id[:64]
                ids = ids_from_json(body.get("ids"), serving.config.serving.max_ids)
                n_ids = len(ids)
                features = features_from_json(body.get("features"), len(ids))
                out = serving.score(model_id, ids, features, given_id, client, kind="http")
            except Exception as exc:  # noqa: BLE001 - logged and audited; no exception text leaves
                self._fail(client, model_id, request_id, exc, n_ids)
                return
            self._send(200, out.to_json())

    return Handler

"""Split inference on a party's service: the host's `Partials` RPC, the guest's `Score` RPC
and HTTP/JSON endpoint, the audit log and metrics.

Host side: a peer asks for its partial results for a model version and some ids. The peer's
identity comes from its certificate; the host's own policy must allow it the protocol
"inference" on the model's dataset, it must be a party of the training, and the version asked
must be the one the host serves. The host reads the ids' features from its configured source,
applies its own fitted preprocessing and its own part, and reports the ids it lacks.

Guest side: applications send ids (and optionally the guest's features); the guest loads its
part (checking every host's version), asks every host in parallel, merges, logs each
prediction and answers per id. Only the certificate identities in ``serving.clients`` may
score or read the metrics (none by default); every failed or refused request is logged once,
without its payload, and audited; no exception text ever leaves the process.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import numpy as np
import pandas as pd

from vfl.config import PartyConfig
from vfl.errors import (
    ConfigError,
    DataError,
    PeerError,
    PolicyError,
    ProtocolError,
    UnknownModelError,
    VflError,
)
from vfl.names import check_name
from vfl.parties.grpc_channel import ERROR_KIND
from vfl.serving import stages
from vfl.serving.audit import AuditLog, Metrics
from vfl.serving.bundle import ModelBundle
from vfl.serving.online import ServedGuestModel, feature_source, load_guest_model
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.proto import serving_pb2_grpc as spb_grpc
from vfl.serving.scoring import HostScorer, Partials
from vfl.serving.store import ModelRecord, ModelStore
from vfl.serving.wire import features_from_json, ids_from_json, ids_from_pb, partials_to_pb

if TYPE_CHECKING:
    from vfl.parties.service import PartyService

log = logging.getLogger("vfl.serving")

INFERENCE = "inference"  # the protocol name a host's policy allows for serving
PRODUCTION_TTL = 1.0  # seconds a looked-up production version is trusted (promotions show up after)
REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_BODY = 64 << 20
HTTP_IDLE_TIMEOUT = 30.0  # seconds an HTTP connection may stay silent


@dataclass
class ScoreOutcome:
    request_id: str
    model_id: str
    version: str
    result: pd.DataFrame

    def to_json(self) -> dict[str, Any]:
        results = [
            {"id": i, "score": None if np.isnan(s) else float(s), "missing": m.split(",") if m else []}
            for i, s, m in zip(self.result["id"].tolist(), self.result["score"].to_numpy(),
                               self.result["missing"].tolist(), strict=True)
        ]
        body: dict[str, Any] = {"request_id": self.request_id, "model_id": self.model_id,
                                "version": self.version, "results": results}
        if self.result.attrs.get("host_errors"):
            body["host_errors"] = self.result.attrs["host_errors"]
        return body


class Serving:
    """One party's serving state: the parts it has loaded, its audit log and metrics."""

    def __init__(self, config: PartyConfig, store: ModelStore | None = None) -> None:
        self.config = config
        self.name = config.name
        self.store = store or ModelStore.of(config)
        self.metrics = Metrics()
        self.audit: AuditLog | None = None
        if config.serving.audit:
            self.audit = AuditLog(config.serving.audit_log
                                  or f"sqlite:///{self.store.root / 'predictions.db'}")
        self._lock = threading.Lock()
        self._host_lock = threading.Lock()  # held while a host part's feature source loads
        self._bundles: dict[tuple[str, str], ModelBundle] = {}
        self._production: dict[str, tuple[float, ModelRecord]] = {}
        self._host_parts: dict[tuple[str, str], HostScorer] = {}
        self._sources: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._guests: dict[str, ServedGuestModel] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._http: _HttpServer | None = None

    # --- the served version -------------------------------------------------------------
    def production(self, model_id: str) -> ModelRecord:
        """The production record, re-read from the registry at most every PRODUCTION_TTL s."""
        now = time.monotonic()
        cached = self._production.get(model_id)
        if cached is not None and now - cached[0] < PRODUCTION_TTL:
            return cached[1]
        record = self.store.get(model_id)
        self._production[model_id] = (now, record)
        return record

    # --- host side ----------------------------------------------------------------------
    def check_peer(self, peer: str, model_id: str, protocol: str = INFERENCE) -> str:
        """The dataset this host serves `model_id` from, if its policy lets `peer` ask for it
        (`protocol`: "inference" for partial results, "promote" to move its version)."""
        served = self.config.serving.models.get(model_id)
        if served is None:
            raise PolicyError(f"'{self.name}' serves no model '{model_id}' (serving.models: "
                              f"{sorted(self.config.serving.models)})")
        allowed = any(
            _match(rule.peers, peer) and _match(rule.protocols, protocol) and _match(rule.datasets, served.dataset)
            for rule in self.config.policy.allow
        )
        if not allowed:
            raise PolicyError(f"policy of '{self.name}' does not allow peer '{peer}' protocol "
                              f"'{protocol}' on dataset '{served.dataset}'")
        return served.dataset

    def host_record(self, peer: str, model_id: str) -> ModelRecord:
        self.check_peer(peer, model_id)
        record = self.production(model_id)
        if record.role != "host":
            raise DataError(f"'{self.name}' holds the {record.role} part of model '{model_id}', not a host part")
        if peer not in record.peers:
            raise PolicyError(f"'{peer}' took no part in training model '{model_id}' "
                              f"version '{record.version}' on '{self.name}'")
        return record

    def describe(self, peer: str, model_id: str) -> spb.ModelInfo:
        record = self.host_record(peer, model_id)
        part = self._bundle(record).part  # never waits for a feature source to load
        width = int(part.W.shape[1]) if hasattr(part, "W") else 1
        return spb.ModelInfo(party=self.name, model_id=model_id, version=record.version,
                             kind=record.kind, role=record.role, width=width)

    def partials(self, peer: str, model_id: str, version: str, ids: pd.Series) -> tuple[str, Partials]:
        record = self.host_record(peer, model_id)
        if version != record.version:
            raise DataError(f"model '{model_id}': '{peer}' asks for version '{version}' but "
                            f"'{self.name}' serves version '{record.version}'; promote the same "
                            "version on both")
        return record.version, self._host_part(record).partials(ids)

    def _bundle(self, record: ModelRecord) -> ModelBundle:
        key = (record.model_id, record.version)
        bundle = self._bundles.get(key)
        if bundle is None:  # small files; two threads loading the same one at once is harmless
            bundle = self._bundles[key] = ModelBundle.load(self.store.open(record))
        return bundle

    def _host_part(self, record: ModelRecord) -> HostScorer:
        key = (record.model_id, record.version)
        scorer = self._host_parts.get(key)
        if scorer is None:
            with self._host_lock:
                scorer = self._host_parts.get(key)
                if scorer is None:
                    bundle = self._bundle(record)
                    source_key = (record.model_id, tuple(bundle.columns))  # shared by versions alike
                    if source_key not in self._sources:
                        self._sources[source_key] = feature_source(self.config, record.model_id, bundle.columns)
                    scorer = HostScorer(bundle, self._sources[source_key])
                    self._host_parts[key] = scorer
        return scorer

    def warm(self) -> None:
        """Load the production host parts and their feature sources now rather than at the
        first request: indexing a large file source can take longer than a guest waits."""
        for model_id in self.config.serving.models:
            try:
                record = self.store.get(model_id)
                if record.role == "host":
                    self._host_part(record)
                    log.info("%s: host part of '%s' version '%s' ready", self.name, model_id, record.version)
            except UnknownModelError:
                log.info("%s: model '%s' has no production version here yet", self.name, model_id)
            except VflError as exc:
                log.warning("%s: model '%s' not preloaded: %s", self.name, model_id, exc)

    # --- guest side ---------------------------------------------------------------------
    def guest_model(self, model_id: str) -> ServedGuestModel:
        """The loaded guest part, reloaded (and re-checked with every host) after a promotion."""
        record = self.production(model_id)
        loaded = self._guests.get(model_id)
        if loaded is not None and loaded.version == record.version:
            return loaded
        with self._lock:
            lock = self._loading.setdefault(model_id, threading.Lock())
        with lock:
            loaded = self._guests.get(model_id)
            if loaded is None or loaded.version != record.version:
                fresh = load_guest_model(self.config, self.store, model_id, record.version)
                self._guests[model_id] = fresh
                if loaded is not None:
                    loaded.close()
                loaded = fresh
        return loaded

    def score(self, model_id: str, ids: pd.Series, features: pd.DataFrame | None, request_id: str = "",
              client: str = "") -> ScoreOutcome:
        """Score ids online: metrics always, the audit log when configured."""
        if request_id and not REQUEST_ID.match(request_id):
            raise ProtocolError("request_id must be 1-64 characters of letters, digits, '_.:-'")
        request_id = request_id or uuid.uuid4().hex
        start = time.perf_counter()
        try:
            model = self.guest_model(model_id)
            result = model.scorer.score(ids, features)
        except Exception as exc:
            self.metrics.observe(model_id, 0.0, len(ids), error=type(exc).__name__)
            raise
        latency_ms = (time.perf_counter() - start) * 1e3
        self.metrics.observe(model_id, latency_ms, len(ids))
        if self.audit is not None:
            self.audit.record(request_id, client, model_id, model.version, result, latency_ms)
        return ScoreOutcome(request_id, model_id, model.version, result)

    def failed(self, client: str, model_id: str, request_id: str, status: str, exc: Exception,
               n_ids: int = 0) -> None:
        """A failed or refused request: one log line (no payload, no message that could quote
        data; the caller's strings quoted, so they cannot forge log lines) and one audit row."""
        kind = type(exc).__name__ if isinstance(exc, VflError | TimeoutError) else "internal"
        log.warning("%s: request %r from %r for model %r failed: %s %s (%d ids)", self.name,
                    request_id, client, model_id, status, kind, n_ids)
        if self.audit is not None:
            message = str(exc) if kind != "internal" else "internal error"
            self.audit.record_failure(request_id, client, model_id, status, kind, message, n_ids)

    def allows(self, client: str) -> bool:
        """Whether `client` (a certificate identity) may score and read the metrics."""
        return _match(self.config.serving.clients, client)

    # --- HTTP ---------------------------------------------------------------------------
    def start_http(self) -> int | None:
        listen = self.config.serving.http_listen
        if listen is None:
            return None
        host, _, port = listen.rpartition(":")
        try:
            server = _HttpServer((host or "127.0.0.1", int(port)), _http_handler(self))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"serving.http_listen: cannot listen on {listen}: {exc}") from None
        if self.config.serving.http_tls:
            if self.config.tls is None:
                raise ConfigError("serving.http_tls needs the party's `tls` section")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.config.tls.ca))
            context.load_cert_chain(str(self.config.tls.cert), str(self.config.tls.key))
            context.verify_mode = ssl.CERT_REQUIRED
            # the handshake runs in each connection's own thread (Handler.setup), never in the
            # accept loop, where one silent client would block every other
            server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=server.serve_forever, name=f"vfl-{self.name}-http", daemon=True).start()
        self._http = server
        log.info("%s: HTTP scoring endpoint on %s (%s)", self.name, listen,
                 "mutual TLS" if self.config.serving.http_tls else "plain HTTP")
        return int(server.server_address[1])

    def health(self) -> dict[str, Any]:
        """Liveness only: open to any caller, so it carries no data."""
        return {"status": "ok"}

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        for model in self._guests.values():
            model.close()
        self._guests.clear()
        if self.audit is not None:
            self.audit.close()


def _match(patterns: list[str], value: str) -> bool:
    return "*" in patterns or value in patterns


# --- gRPC ---------------------------------------------------------------------------------

_GRPC_CODES: list[tuple[type[Exception], grpc.StatusCode, str]] = [
    (PolicyError, grpc.StatusCode.PERMISSION_DENIED, "policy"),
    (UnknownModelError, grpc.StatusCode.NOT_FOUND, "unknown-model"),
    (ProtocolError, grpc.StatusCode.INVALID_ARGUMENT, "protocol"),
    (DataError, grpc.StatusCode.FAILED_PRECONDITION, "data"),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION, "data"),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED, "peer"),
    (PeerError, grpc.StatusCode.UNAVAILABLE, "peer"),
]


def _grpc_code(exc: Exception) -> tuple[grpc.StatusCode, str]:
    return next(((code, kind) for cls, code, kind in _GRPC_CODES if isinstance(exc, cls)),
                (grpc.StatusCode.INTERNAL, ""))


def _abort(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    code, kind = _grpc_code(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.error("serving: unexpected error", exc_info=exc)
        context.abort(code, "internal error (details in the serving party's log)")
    context.set_trailing_metadata(((ERROR_KIND, kind),))
    context.abort(code, str(exc))
    raise AssertionError("unreachable")


def _identity(context: grpc.ServicerContext, insecure: bool, claimed: str = "") -> str:
    """The caller's name from its verified certificate (plaintext mode: the claimed name)."""
    if insecure:
        return claimed or "anonymous"
    names = context.auth_context().get("x509_common_name") or []
    if not names:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate")
    identity = names[0].decode("utf-8", "replace")
    if claimed and claimed != identity:
        context.abort(grpc.StatusCode.PERMISSION_DENIED,
                      f"request claims to come from '{claimed}' but the certificate identifies '{identity}'")
    return str(identity)


class InferenceServicer(spb_grpc.InferenceServicer):
    """Host side: a peer asks for this party's partial results."""

    def __init__(self, serving: Serving, insecure: bool) -> None:
        self.serving, self.insecure = serving, insecure

    def _peer(self, context: grpc.ServicerContext, claimed: str) -> str:
        peer = _identity(context, self.insecure, claimed)
        if peer not in self.serving.config.peers:
            log.warning("%s: refused inference for '%s' (not a configured peer)", self.serving.name, peer)
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"'{peer}' is not a configured peer of '{self.serving.name}'")
        return peer

    def _refused(self, peer: str, model_id: str, exc: VflError) -> None:
        log.warning("%s: inference for '%s' on model %r refused: %s", self.serving.name, peer,
                    model_id[:128], type(exc).__name__)

    def Describe(self, request: spb.DescribeRequest, context: grpc.ServicerContext) -> spb.ModelInfo:
        peer = self._peer(context, request.sender)
        try:
            return self.serving.describe(peer, request.model_id)
        except VflError as exc:
            self._refused(peer, request.model_id, exc)
            _abort(context, exc)

    def Partials(self, request: spb.PartialsRequest, context: grpc.ServicerContext) -> spb.PartialsReply:
        peer = self._peer(context, request.sender)
        try:
            ids = ids_from_pb(request.ids, self.serving.config.serving.max_ids, peer)
            version, answer = self.serving.partials(peer, request.model_id, request.version, ids)
            return partials_to_pb(answer, version)
        except VflError as exc:
            self._refused(peer, request.model_id, exc)
            _abort(context, exc)


class ModelsServicer(spb_grpc.ModelsServicer):
    """Host side of a federated promote/rollback: the guest asks, this party's policy decides."""

    def __init__(self, serving: Serving, insecure: bool) -> None:
        self.serving, self.insecure = serving, insecure

    def Stage(self, request: spb.StageRequest, context: grpc.ServicerContext) -> spb.StageReply:
        peer = _identity(context, self.insecure, request.sender)
        try:
            if peer not in self.serving.config.peers:
                raise PolicyError(f"'{peer}' is not a configured peer of '{self.serving.name}'")
            self.serving.check_peer(peer, request.model_id, stages.PROMOTE)
            previous, version = stages.stage_here(self.serving.store, request.model_id, request.action,
                                                  request.version, peer=peer, dry_run=request.dry_run)
        except VflError as exc:
            log.warning("%s: %s of model %r for '%s' refused: %s", self.serving.name, request.action[:16],
                        request.model_id[:128], peer, type(exc).__name__)
            _abort(context, exc)
        if not request.dry_run:
            log.info("%s: model '%s' %s by '%s': version '%s' (was '%s')", self.serving.name,
                     request.model_id, request.action, peer, version, previous)
        return spb.StageReply(party=self.serving.name, previous=previous or "", version=version)


class ScoringServicer(spb_grpc.ScoringServicer):
    """Guest side: an application whose certificate identity is in ``serving.clients`` asks
    for scores; anyone else is refused before anything is read."""

    def __init__(self, serving: Serving, insecure: bool) -> None:
        self.serving, self.insecure = serving, insecure

    def Score(self, request: spb.ScoreRequest, context: grpc.ServicerContext) -> spb.ScoreReply:
        client = _identity(context, self.insecure)
        n_ids = len(request.ids.ints) or len(request.ids.strings)
        try:
            if not self.serving.allows(client):
                raise PolicyError(f"'{client}' is not in serving.clients of '{self.serving.name}'")
            ids = ids_from_pb(request.ids, self.serving.config.serving.max_ids, client)
            features = None
            if request.features_json:
                features = features_from_json(_json(request.features_json), len(ids))
            out = self.serving.score(request.model_id, ids, features, request.request_id, client)
        except Exception as exc:  # noqa: BLE001 - every failure is logged, audited and mapped
            self.serving.failed(client, request.model_id[:128], request.request_id[:64],
                                _grpc_code(exc)[0].name, exc, n_ids)
            _abort(context, exc)
        return spb.ScoreReply(
            request_id=out.request_id, model_id=out.model_id, version=out.version,
            scores=out.result["score"].tolist(), missing=out.result["missing"].tolist(),
            host_errors=out.result.attrs.get("host_errors", {}),
        )


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"body is not valid JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise ProtocolError("body is nested too deeply") from None


def attach(service: PartyService, server: grpc.Server) -> Serving:
    """Hook for PartyService.start: host the inference RPCs (and the guest's HTTP endpoint)."""
    serving = Serving(service.config)
    spb_grpc.add_InferenceServicer_to_server(InferenceServicer(serving, service.insecure), server)
    spb_grpc.add_ScoringServicer_to_server(ScoringServicer(serving, service.insecure), server)
    spb_grpc.add_ModelsServicer_to_server(ModelsServicer(serving, service.insecure), server)
    serving.start_http()
    threading.Thread(target=serving.warm, name=f"vfl-{serving.name}-warm", daemon=True).start()
    return serving


# --- HTTP/JSON ----------------------------------------------------------------------------

_HTTP_STATUS: list[tuple[type[Exception], int]] = [
    (PolicyError, 403), (UnknownModelError, 404), (ProtocolError, 400), (DataError, 422),
    (ConfigError, 422), (TimeoutError, 504), (PeerError, 502),
]
_SCORE_PATH = re.compile(r"^/v1/models/([^/]*)/score$")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (TLS handshake refused, client gone): one log line."""
        log.warning("http %s: connection ended: %s", client_address[0], sys.exc_info()[1])


def _http_handler(serving: Serving) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "vfl-serving"
        protocol_version = "HTTP/1.1"
        default_request_version = "HTTP/1.0"  # so an unparsable request line still gets a status line
        timeout = HTTP_IDLE_TIMEOUT  # a silent or stalled client loses its connection

        def setup(self) -> None:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.settimeout(self.timeout)
                self.request.do_handshake()  # a failure ends this connection (_HttpServer.handle_error)
            super().setup()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("http %s: " + format, self.client_address[0], *args)

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
            status = next((s for cls, s in _HTTP_STATUS if isinstance(exc, cls)), 500)
            serving.failed(client, model_id, request_id, str(status), exc, n_ids)
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

        def _client(self) -> str:
            getpeercert = getattr(self.connection, "getpeercert", None)
            cert = getpeercert() if getpeercert else None
            for rdn in (cert or {}).get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        return str(value)
            return f"http:{self.client_address[0]}"

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
                if not self._refuse_stranger(self._client()):
                    self._send(200, serving.metrics.snapshot())
            else:
                self._not_found()

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            match = _SCORE_PATH.match(self.path)
            if match is None:
                self._not_found()
                return
            client = self._client()
            if self._refuse_stranger(client):
                return
            model_id, request_id, n_ids = match.group(1)[:128], "", 0
            try:
                check_name(model_id, "model id in the path")
                body = _json(self._body())
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
                out = serving.score(model_id, ids, features, given_id, client)
            except Exception as exc:  # noqa: BLE001 - logged and audited; no exception text leaves
                self._fail(client, model_id, request_id, exc, n_ids)
                return
            self._send(200, out.to_json())

    return Handler

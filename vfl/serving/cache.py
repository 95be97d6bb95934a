"""The models a party serves, as its service answers for them: the production version of each
model (re-read every second, so promotions show up), the loaded guest and host parts, the
host's policy check, the audit log and the metrics. The gRPC adapters (`vfl.serving.grpc_api`)
and the HTTP/JSON adapter (`vfl.serving.http_api`) translate requests into calls here.

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

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vfl.errors import (
    DataError,
    PolicyError,
    ProtocolError,
    UnknownModelError,
    VflError,
)
from vfl.parties import policy
from vfl.parties.compute import Compute
from vfl.parties.config import PartyConfig
from vfl.parties.metrics import ServiceMetrics
from vfl.serving.bundle import ModelBundle
from vfl.serving.online import ServedGuestModel, feature_source, load_guest_model
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.scoring import HostScorer, Partials
from vfl.store.audit import AuditLog, Metrics
from vfl.store.models import ModelRecord, ModelStore

log = logging.getLogger("vfl.serving")

INFERENCE = "inference"  # the protocol name a host's policy allows for serving
PRODUCTION_TTL = 1.0  # seconds a looked-up production version is trusted (promotions show up after)
REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass
class ScoreOutcome:
    request_id: str
    model_id: str
    version: str
    result: pd.DataFrame
    versions: dict[str, str]  # party -> the version of its part used (the guest's and each host's)

    def to_json(self) -> dict[str, Any]:
        results = [
            {"id": i, "score": None if np.isnan(s) else float(s), "missing": m.split(",") if m else []}
            for i, s, m in zip(self.result["id"].tolist(), self.result["score"].to_numpy(),
                               self.result["missing"].tolist(), strict=True)
        ]
        body: dict[str, Any] = {"request_id": self.request_id, "model_id": self.model_id,
                                "version": self.version, "versions": self.versions, "results": results}
        if self.result.attrs.get("host_errors"):
            body["host_errors"] = self.result.attrs["host_errors"]
        return body


class Serving:
    """One party's serving state: the parts it has loaded, its audit log and metrics (the JSON
    ``/v1/metrics`` window, and the service's Prometheus metrics: `prometheus`)."""

    def __init__(self, config: PartyConfig, store: ModelStore | None = None,
                 prometheus: ServiceMetrics | None = None, compute: Compute | None = None) -> None:
        self.config = config
        self.compute = compute  # where file feature sources are kept: None reads them here
        self.name = config.name
        self.store = store or ModelStore.of(config)
        self.metrics = Metrics()
        self.prometheus = prometheus or ServiceMetrics(config.name)
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
        self._warming: set[str] = set()  # models being loaded for readiness

    # --- the served version -------------------------------------------------------------
    def production(self, model_id: str, fresh: bool = False) -> ModelRecord:
        """The production record, re-read from the model store at most every PRODUCTION_TTL s
        (now, with `fresh`); replicas sharing the store all follow a promotion within it."""
        now = time.monotonic()
        cached = self._production.get(model_id)
        if cached is not None and now - cached[0] < PRODUCTION_TTL and not fresh:
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
        if not policy.allows(self.config.policy, peer, protocol, [served.dataset]):
            raise PolicyError(f"policy of '{self.name}' does not allow peer '{peer}' protocol "
                              f"'{protocol}' on dataset '{served.dataset}'")
        return served.dataset

    def host_record(self, peer: str, model_id: str, version: str | None = None) -> ModelRecord:
        """The host part's production record; re-read now when the guest asks for another
        `version` (it may have just been promoted on another replica)."""
        self.check_peer(peer, model_id)
        record = self.production(model_id)
        if version is not None and version != record.version:
            record = self.production(model_id, fresh=True)
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
        start = time.perf_counter()
        try:
            record = self.host_record(peer, model_id, version)
            if version != record.version:
                raise DataError(f"model '{model_id}': '{peer}' asks for version '{version}' but "
                                f"'{self.name}' serves version '{record.version}'; promote the same "
                                "version on both")
            answer = self._host_part(record).partials(ids)
        except Exception as exc:
            self.prometheus.failure(PARTIALS, self._model_label(model_id), _error_kind(exc))
            raise
        self.prometheus.request(PARTIALS, model_id, record.version, time.perf_counter() - start, len(ids),
                                [(self.name, int(len(ids) - answer.found.sum()))])
        return record.version, answer

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
                        self._sources[source_key] = feature_source(self.config, record.model_id, bundle.columns,
                                                                    self.compute)
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
                    self._host_part(record).source.prepare()
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
                fresh = load_guest_model(self.config, self.store, model_id, record.version,
                                         compute=self.compute)
                self._guests[model_id] = fresh
                if loaded is not None:
                    loaded.close()
                loaded = fresh
        return loaded

    def score(self, model_id: str, ids: pd.Series, features: pd.DataFrame | None, request_id: str = "",
              client: str = "", kind: str = "grpc") -> ScoreOutcome:
        """Score ids online: metrics always, the audit log when configured. `kind`: the
        adapter that asks (``grpc`` or ``http``), a label of the Prometheus metrics."""
        if request_id and not REQUEST_ID.match(request_id):
            raise ProtocolError("request_id must be 1-64 characters of letters, digits, '_.:-'")
        request_id = request_id or uuid.uuid4().hex
        start = time.perf_counter()
        try:
            model = self.guest_model(model_id)
            try:
                result = model.scorer.score(ids, features)
            except VflError:
                if self.production(model_id, fresh=True).version == model.version:
                    raise
                model = self.guest_model(model_id)  # promoted meanwhile: once more, all on the new version
                result = model.scorer.score(ids, features)
        except Exception as exc:
            self.metrics.observe(model_id, 0.0, len(ids), error=type(exc).__name__)
            raise
        latency_ms = (time.perf_counter() - start) * 1e3
        self.metrics.observe(model_id, latency_ms, len(ids))
        self.prometheus.request(kind, model_id, model.version, latency_ms / 1e3, len(ids), _missing(result))
        if self.audit is not None:
            self.audit.record(request_id, client, model_id, model.version, result, latency_ms)
        failed = result.attrs.get("host_errors", {})
        versions = {self.name: model.version, **{h.name: h.version for h in model.hosts if h.name not in failed}}
        return ScoreOutcome(request_id, model_id, model.version, result, versions)

    def failed(self, client: str, model_id: str, request_id: str, status: str, exc: Exception,
               n_ids: int = 0, adapter: str = "grpc") -> None:
        """A failed or refused request through `adapter` (``grpc``, ``http``): one log line (no
        payload, no message that could quote data; the caller's strings quoted, so they cannot
        forge log lines), one audit row, and the Prometheus error count."""
        kind = _error_kind(exc)
        self.prometheus.failure(adapter, self._model_label(model_id), kind)
        log.warning("%s: request %r from %r for model %r failed: %s %s (%d ids)", self.name,
                    request_id, client, model_id, status, kind, n_ids)
        if self.audit is not None:
            message = str(exc) if kind != "internal" else "internal error"
            self.audit.record_failure(request_id, client, model_id, status, kind, message, n_ids)

    def _model_label(self, model_id: str) -> str:
        """`model_id` as a metric label: a served model's id, or "" (a caller's unknown names
        must not grow the metrics without bound)."""
        return model_id if model_id in self.config.serving.models else ""

    def served_versions(self) -> Iterator[Any]:
        """The Prometheus gauge of the production version of each served model (read at scrape)."""
        served = []
        for model_id in self.config.serving.models:
            try:
                record = self.production(model_id)
            except VflError:
                continue  # none in production yet
            served.append(([model_id, record.version, record.role], 1.0))
        yield self.prometheus.gauge("vfl_model_version", "The model version this service serves (1)",
                                    ["model", "version", "role"], served)

    def unloaded(self) -> str | None:
        """Readiness: None when every served model with a production version is loaded; else
        which are not, and their loading starts in the background."""
        waiting = []
        for model_id in self.config.serving.models:
            try:
                record = self.production(model_id)
            except UnknownModelError:
                continue  # nothing to serve yet: a party without a trained model is ready for jobs
            key = (model_id, record.version)
            guest = self._guests.get(model_id)
            if key in self._host_parts or (guest is not None and guest.version == record.version):
                continue
            waiting.append(f"model '{model_id}' version '{record.version}' not loaded yet")
            self._load_in_background(record)
        return "; ".join(waiting) or None

    def _load_in_background(self, record: ModelRecord) -> None:
        with self._lock:
            if record.model_id in self._warming:
                return
            self._warming.add(record.model_id)

        def load() -> None:
            try:
                if record.role == "host":
                    self._host_part(record).source.prepare()
                else:
                    self.guest_model(record.model_id)
            except VflError as exc:
                log.warning("%s: model '%s' not loaded: %s", self.name, record.model_id, exc)
            finally:
                with self._lock:
                    self._warming.discard(record.model_id)

        threading.Thread(target=load, name=f"vfl-{self.name}-load", daemon=True).start()

    def allows(self, client: str) -> bool:
        """Whether `client` (a certificate identity) may score and read the metrics."""
        return policy.matches(self.config.serving.clients, client)

    def health(self) -> dict[str, Any]:
        """Liveness only: open to any caller, so it carries no data."""
        return {"status": "ok"}

    def close(self) -> None:
        for model in self._guests.values():
            model.close()
        self._guests.clear()
        if self.audit is not None:
            self.audit.close()


PARTIALS = "partials"  # the kind of request a host answers (a guest's online or batch scores)


def _error_kind(exc: Exception) -> str:
    """The error class a failure is counted and audited under ("internal" for a bug)."""
    return type(exc).__name__ if isinstance(exc, VflError | TimeoutError) else "internal"


def _missing(result: pd.DataFrame) -> list[tuple[str, int]]:
    """(party, ids it lacked) from a scored frame's ``missing`` column ("", "partner", "guest,partner")."""
    counts: dict[str, int] = {}
    for missing in result["missing"].tolist():
        for party in missing.split(",") if missing else ():
            counts[party] = counts.get(party, 0) + 1
    return list(counts.items())

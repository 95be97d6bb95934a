"""Audit and monitoring of online predictions.

`AuditLog` appends one row per scored id (request id, caller, model id/version, id, score,
hosts that lacked the id, latency, time) to a SQL table, and one row per failed or refused
request (caller, model id, status, error kind and message, number of ids; never the ids) to
another, from a background thread so the request path never waits for the database. `Metrics` keeps request counts, errors and a
window of recent latencies in memory for ``/v1/metrics``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
)
from sqlalchemy.exc import SQLAlchemyError

from vfl.connectors.uri import redact_uri
from vfl.errors import ConfigError
from vfl.store.files import private_sqlite

log = logging.getLogger("vfl.store.audit")
LINGER = 0.05  # seconds a batch of audit rows waits for more before it is written
MAX_ROWS_PER_WRITE = 50_000

_metadata = MetaData()
predictions = Table(
    "vfl_predictions",
    _metadata,
    Column("row", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("client", String(128), nullable=False),
    Column("model_id", String(128), nullable=False),
    Column("version", String(128), nullable=False),
    Column("id", String(256), nullable=False),
    Column("score", Float, nullable=True),
    Column("missing", String(512), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
failures = Table(
    "vfl_failed_requests",
    _metadata,
    Column("row", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("client", String(128), nullable=False),
    Column("model_id", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("error", String(512), nullable=False),
    Column("n_ids", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class AuditLog:
    """Rows are queued by `record` and written in batches by one writer thread."""

    def __init__(self, url: str, max_queue: int = 100_000) -> None:
        self.url = url
        try:
            self._engine = create_engine(private_sqlite(url))
            _metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            raise ConfigError(f"serving.audit_log {redact_uri(url)} unusable: {type(exc).__name__}: {exc}") from None
        self._queue: queue.Queue[tuple[Table, list[dict[str, Any]]] | None] = queue.Queue(max_queue)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="vfl-audit", daemon=True)
        self._thread.start()

    def record(self, request_id: str, client: str, model_id: str, version: str, result: pd.DataFrame,
               latency_ms: float) -> None:
        now = datetime.now(timezone.utc)
        scores = result["score"].to_numpy()
        rows = [
            {"request_id": request_id, "client": client, "model_id": model_id, "version": version,
             "id": str(i), "score": None if np.isnan(s) else float(s), "missing": m,
             "latency_ms": latency_ms, "created_at": now}
            for i, s, m in zip(result["id"].tolist(), scores, result["missing"].tolist(), strict=True)
        ]
        self._put(predictions, rows)

    def record_failure(self, request_id: str, client: str, model_id: str, status: str, kind: str,
                       error: str, n_ids: int) -> None:
        """One failed or refused request (its ids are not kept)."""
        self._put(failures, [{"request_id": request_id, "client": client[:128], "model_id": model_id[:128],
                              "status": status, "kind": kind[:64], "error": error[:512], "n_ids": n_ids,
                              "created_at": datetime.now(timezone.utc)}])

    def _put(self, table: Table, rows: list[dict[str, Any]]) -> None:
        try:
            self._queue.put_nowait((table, rows))
        except queue.Full:
            self.dropped += len(rows)
            log.error("audit queue full: %d rows not logged so far", self.dropped)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            taken, stop = 1, batch is None
            tables: dict[Table, list[dict[str, Any]]] = {}
            if batch is not None:
                tables.setdefault(batch[0], []).extend(batch[1])
            linger_until = time.monotonic() + LINGER
            while not stop and sum(map(len, tables.values())) < MAX_ROWS_PER_WRITE:
                # collect what arrives for a moment: one transaction for many requests, so the
                # database's per-commit cost is not paid (and competed for) on every request
                try:
                    more = self._queue.get(timeout=max(0.0, linger_until - time.monotonic()))
                except queue.Empty:
                    break
                taken += 1
                stop = more is None
                if more is not None:
                    tables.setdefault(more[0], []).extend(more[1])
            rows = [row for table_rows in tables.values() for row in table_rows]
            if rows:
                try:
                    with self._engine.begin() as conn:
                        for table, table_rows in tables.items():
                            conn.execute(insert(table), table_rows)
                except SQLAlchemyError as exc:
                    self.dropped += len(rows)
                    log.error("audit log %s: %d rows not written: %s", redact_uri(self.url), len(rows),
                              type(exc).__name__)
            for _ in range(taken):
                self._queue.task_done()
            if stop:
                return

    def flush(self) -> None:
        """Wait until every queued row is written (tests, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)
        self._engine.dispose()


class Metrics:
    """Request counts, errors and latency percentiles over the last `window` requests."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.ids = 0
        self._latencies: deque[float] = deque(maxlen=window)

    def observe(self, model_id: str, latency_ms: float, n_ids: int, error: str | None = None) -> None:
        with self._lock:
            self.requests[model_id] = self.requests.get(model_id, 0) + 1
            if error is not None:
                self.errors[error] = self.errors.get(error, 0) + 1
            else:
                self.ids += n_ids
                self._latencies.append(latency_ms)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            lat = np.asarray(self._latencies)
            out: dict[str, Any] = {
                "requests": sum(self.requests.values()), "requests_by_model": dict(self.requests),
                "errors": sum(self.errors.values()), "errors_by_kind": dict(self.errors),
                "ids_scored": self.ids, "latency_window": len(lat),
            }
        for q in (50, 95, 99):
            out[f"latency_ms_p{q}"] = round(float(np.percentile(lat, q)), 3) if len(lat) else None
        return out

"""Split inference: each host computes its part from its own features; the guest merges.

The host answers "your part for these ids" (`HostScorer.partials`) with a flag per id it could
not find; the guest asks every host in parallel, adds its own part and returns one row per id:
the score, or no score and the names of the hosts that lacked the id. Nothing is ever scored
from made-up values. The same path serves one online request and every chunk of a batch job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlencode

import numpy as np
import pandas as pd
import sqlalchemy as sa

from vfl.connectors import iter_table
from vfl.connectors.sql import engine_for
from vfl.connectors.tables import open_writer
from vfl.connectors.uri import parse_uri
from vfl.errors import DataError, PeerError
from vfl.serving.bundle import ModelBundle
from vfl.serving.features import FeatureSource, conform_ids

log = logging.getLogger("vfl.serving")


@dataclass
class Partials:
    """A host's answer: contributions (n_found, k) for the found ids, and the found flags (n,)."""

    values: np.ndarray
    found: np.ndarray


class HostScorer:
    """The host's side: look the ids up in its own source, preprocess, apply its own part."""

    def __init__(self, bundle: ModelBundle, source: FeatureSource) -> None:
        if bundle.role != "host":
            raise DataError(f"HostScorer needs a host bundle, got a {bundle.role} one")
        self.bundle = bundle
        self.source = source

    def partials(self, ids: pd.Series) -> Partials:
        lookup = self.source.lookup(ids)
        if not lookup.found.any():
            return Partials(np.zeros((0, 1)), lookup.found)
        return Partials(self.bundle.part.contribution(self.bundle.features(lookup.X)), lookup.found)


class HostClient(Protocol):
    """How the guest reaches one host's partials: in process, or the host's service over gRPC."""

    name: str

    def partials(self, ids: pd.Series) -> Partials: ...


class LocalHost:
    """A host scorer called directly (simulation, tests, single-process batch jobs)."""

    def __init__(self, name: str, scorer: HostScorer) -> None:
        self.name = name
        self.scorer = scorer

    def partials(self, ids: pd.Series) -> Partials:
        return self.scorer.partials(ids)


class GuestScorer:
    """The guest's side: its own features (given or looked up) + every host's partials."""

    def __init__(self, bundle: ModelBundle, hosts: Sequence[HostClient],
                 source: FeatureSource | None = None, on_host_error: str = "error") -> None:
        if bundle.role != "guest":
            raise DataError(f"GuestScorer needs a guest bundle, got a {bundle.role} one")
        if on_host_error not in ("error", "missing"):
            raise DataError(f"on_host_error must be 'error' or 'missing', not {on_host_error!r}")
        self.bundle = bundle
        self.hosts = list(hosts)
        self.source = source
        self.on_host_error = on_host_error
        # room for concurrent requests (online) to call every host at the same time
        self._pool = ThreadPoolExecutor(max(1, 16 * len(self.hosts)), thread_name_prefix="vfl-host-call")

    def score(self, ids: pd.Series | Sequence[object], features: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per id: `score` (NaN when not scorable), `missing` (who lacked the id).

        A failing host raises PeerError (naming it), or with ``on_host_error="missing"`` its
        ids are reported missing and its error is kept in ``result.attrs["host_errors"]``.
        """
        ids = pd.Series(ids).reset_index(drop=True)
        if self.source is not None:
            ids = conform_ids(ids, self.source.id_kind)
        calls = {h.name: self._pool.submit(_ask, h, ids) for h in self.hosts}
        if features is None:
            if self.source is None:
                raise DataError("no guest features in the request and no guest feature source configured")
            lookup = self.source.lookup(ids)
            guest_found, guest_rows = lookup.found, lookup.X
        else:
            if len(features) != len(ids):
                raise DataError(f"{len(features)} feature rows for {len(ids)} ids")
            guest_found, guest_rows = np.ones(len(ids), dtype=bool), features.reset_index(drop=True)
        answers, errors = {}, {}
        for name, call in calls.items():
            try:
                answers[name] = call.result()
            except PeerError as exc:
                if self.on_host_error == "error":
                    raise
                log.warning("host '%s' failed; its ids are reported missing: %s", name, exc)
                errors[name] = str(exc)
                answers[name] = Partials(np.zeros((0, 1)), np.zeros(len(ids), dtype=bool))

        ok = guest_found.copy()
        for ans in answers.values():
            ok &= ans.found
        X = self.bundle.features(guest_rows)[ok[guest_found]] if ok.any() else None
        contributions = [ans.values[ok[ans.found]] for ans in answers.values()]
        scores = np.full(len(ids), np.nan)
        if X is not None:
            scores[ok] = self.bundle.part.predict_proba(X, contributions)
        missing = [""] * len(ids)
        for i in np.flatnonzero(~ok):
            missing[i] = ",".join(([] if guest_found[i] else ["guest"]) +
                                  [name for name, ans in answers.items() if not ans.found[i]])
        result = pd.DataFrame({"id": ids, "score": scores, "missing": missing})
        result.attrs["host_errors"] = errors
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _ask(host: HostClient, ids: pd.Series) -> Partials:
    answer = host.partials(ids)
    if answer.found.shape != (len(ids),) or answer.found.dtype != bool:
        raise PeerError(f"host '{host.name}' answered {answer.found.shape} found flags for {len(ids)} ids")
    if answer.values.ndim != 2 or len(answer.values) != int(answer.found.sum()):
        raise PeerError(f"host '{host.name}' answered {answer.values.shape} partials "
                        f"for {int(answer.found.sum())} found ids")
    return answer


@dataclass
class BatchSummary:
    rows: int
    scored: int
    missing: dict[str, int]
    chunks: int
    retries: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def score_batch(
    scorer: GuestScorer, source: str, sink: str, *, id_column: str, chunk_rows: int = 50_000,
    retries: int = 2, retry_delay: float = 1.0,
    on_progress: Callable[[int, BatchSummary], None] | None = None,
) -> BatchSummary:
    """Score every id of `source` in chunks and write id + score + missing to `sink`.

    The sink is replaced as a whole, so a rerun never duplicates rows, and only once every
    chunk is written: a job that fails leaves the previous sink as it was (files are written
    beside the target and renamed, SQL tables under a staging name and swapped in). A chunk
    that fails is retried `retries` times, `retry_delay` seconds apart (doubling), so a host
    that restarts or a network blip does not cost the whole job.
    """
    start = time.perf_counter()
    summary = BatchSummary(0, 0, {}, 0, 0, 0.0)
    guest_columns = scorer.bundle.columns
    staged = _SqlStaging(sink) if parse_uri(sink).kind == "sql" else None
    try:
        with open_writer(staged.uri if staged else sink, mode="replace") as writer:
            for chunk in iter_table(source, chunk_rows=chunk_rows):
                if id_column not in chunk.columns:
                    raise DataError(f"batch source has no id column '{id_column}' (columns: {list(chunk.columns)})")
                has_features = all(c in chunk.columns for c in guest_columns)
                features = chunk[guest_columns] if has_features else None
                result = _with_retries(scorer, chunk[id_column], features, retries, retry_delay, summary)
                result = result.rename(columns={"id": id_column})
                writer.write(result)
                summary.rows += len(result)
                summary.scored += int(result["score"].notna().sum())
                for names in result["missing"]:
                    for name in filter(None, names.split(",")):
                        summary.missing[name] = summary.missing.get(name, 0) + 1
                summary.chunks += 1
                summary.seconds = time.perf_counter() - start
                if on_progress is not None:
                    on_progress(summary.chunks, summary)
        if staged is not None:
            staged.swap()
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    summary.seconds = time.perf_counter() - start
    return summary


def _with_retries(scorer: GuestScorer, ids: pd.Series, features: pd.DataFrame | None, retries: int,
                  delay: float, summary: BatchSummary) -> pd.DataFrame:
    for attempt in range(retries + 1):
        try:
            return scorer.score(ids, features)
        except (PeerError, TimeoutError, ConnectionError) as exc:
            if attempt == retries:
                raise
            summary.retries += 1
            log.warning("chunk %d failed (%s); retry %d of %d in %.1fs", summary.chunks, exc,
                        attempt + 1, retries, delay * 2 ** attempt)
            time.sleep(delay * 2 ** attempt)
    raise AssertionError("unreachable")


class _SqlStaging:
    """A SQL sink `?table=T` written as `T__vfl_staging`, swapped in when the job succeeds."""

    SUFFIX = "__vfl_staging"

    def __init__(self, sink: str) -> None:
        self.loc = parse_uri(sink)
        if "table" not in self.loc.params:
            raise DataError(f"{self.loc.redacted}: a SQL sink needs ?table=NAME")
        self.table = self.loc.params["table"]
        self.staging = self.table + self.SUFFIX
        base, _, query = sink.partition("?")  # (urlunsplit would turn sqlite:/// into sqlite://)
        params = [(k, self.staging if k == "table" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        self.uri = f"{base}?{urlencode(params)}"

    def _name(self, conn: sa.Connection, table: str, qualified: bool = True) -> str:
        quote = conn.dialect.identifier_preparer
        schema = self.loc.params.get("schema")
        name = quote.quote(table)
        return f"{quote.quote_schema(schema)}.{name}" if schema and qualified else name

    def swap(self) -> None:
        engine = engine_for(self.loc)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {self._name(conn, self.table)}"))
                # MySQL names the target with its schema; SQLite and PostgreSQL keep the source's
                target = self._name(conn, self.table, qualified=conn.dialect.name == "mysql")
                conn.execute(sa.text(f"ALTER TABLE {self._name(conn, self.staging)} RENAME TO {target}"))
        finally:
            engine.dispose()

    def discard(self) -> None:
        engine = engine_for(self.loc)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {self._name(conn, self.staging)}"))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not drop the staging table of %s: %s", self.loc.redacted, type(exc).__name__)
        finally:
            engine.dispose()

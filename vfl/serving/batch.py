"""Batch scoring: every id of a source, in chunks, through split inference, to one sink.

A run is resumable by chunk. Each scored chunk is kept as a Parquet part in a progress
folder (one per sink) beside a manifest of the chunks done; a rerun with the same sink,
source, model version and chunk size reads the source again, checks that the chunks already
scored hold the same ids, and scores only the rest. Once every chunk is scored the parts are
written to the sink in order, replacing it as a whole (files beside the target and renamed,
SQL tables under a staging name and swapped in), and the progress folder is removed. So an
interrupted run followed by reruns leaves exactly what one uninterrupted run leaves: every
id once, in source order, none missing. A job that fails leaves the previous sink untouched.

Every output row carries the model version and the time its chunk was scored. Ids repeated
in the source (within a chunk or across chunks) follow the dataset's ``duplicates:`` setting:
``error`` refuses the source naming both rows, before any chunk is scored; ``keep_first``
scores the first and counts the others. Bad input names the source, the chunk and the row.

Memory stays flat in the number of rows: the source is read chunk by chunk (the id column
alone, first, for the duplicate check: 8 bytes a row), and the sink is written part by part.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np
import pandas as pd
import sqlalchemy as sa

from vfl.connectors import iter_table, read_table, write_table
from vfl.connectors.dataset import id_hashes, repeated_hashes
from vfl.connectors.sql import engine_for
from vfl.connectors.tables import count_rows, open_writer
from vfl.connectors.uri import parse_uri, redact_uri
from vfl.errors import DataError, PeerError
from vfl.serving.scoring import GuestScorer
from vfl.store.files import private_dir, seal

log = logging.getLogger("vfl.serving")

MANIFEST = "manifest.json"
VERSION_COLUMN = "model_version"
TIME_COLUMN = "scored_at"


@dataclass
class BatchSummary:
    """What a batch run wrote: rows, scored rows, missing ids per party, chunks (of which
    `resumed` were scored by an earlier, interrupted run), retries, dropped duplicates."""

    rows: int = 0
    scored: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    retries: int = 0
    seconds: float = 0.0
    resumed: int = 0
    duplicates_dropped: int = 0
    total: int | None = None  # the source's rows, when it tells them cheaply (for progress)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    def add(self, chunk: dict[str, Any]) -> None:
        """Count one chunk's statistics (as the manifest keeps them)."""
        self.rows += chunk["rows"]
        self.scored += chunk["scored"]
        for name, n in chunk["missing"].items():
            self.missing[name] = self.missing.get(name, 0) + n
        self.duplicates_dropped += chunk["dropped"]
        self.chunks += 1


def score_batch(
    scorer: GuestScorer, source: str, sink: str, *, id_column: str, version: str,
    chunk_rows: int = 50_000, id_type: str | None = None, retries: int = 2, retry_delay: float = 1.0,
    duplicates: str = "error", progress_root: Path | None = None, restart: bool = False,
    on_progress: Callable[[int, BatchSummary], None] | None = None,
) -> BatchSummary:
    """Score every id of `source` in chunks; write id, score, missing, model version and
    scoring time to `sink` (replaced once every chunk is scored).

    Parameters
    ----------
    scorer, version
        The guest's scorer and the version of the model it scores with.
    id_type
        ``'str'`` or ``'int'``: reads the ids as the model's dataset declares them (see
        `vfl.connectors.dataset.id_types`); None takes them as the source stores them.
    duplicates
        ``"error"`` or ``"keep_first"``: what a repeated id in the source does.
    progress_root
        Where the progress of each sink is kept between runs (resumable); None keeps it in a
        temporary folder for this run only. `restart` discards saved progress.
    retries, retry_delay
        A chunk that fails is retried `retries` times, `retry_delay` seconds apart (doubling),
        so a host that restarts or a network blip does not cost the whole job.
    """
    if duplicates not in ("error", "keep_first"):
        raise DataError(f"duplicates must be 'error' or 'keep_first', got {duplicates!r}")
    start = time.perf_counter()
    summary = BatchSummary(total=count_rows(source))
    fingerprint = {"source": _sha(source), "model_version": version, "chunk_rows": chunk_rows,
                   "id_column": id_column, "duplicates": duplicates}
    types = {id_column: id_type} if id_type else None
    repeats = _repeated_rows(source, id_column, types, chunk_rows, duplicates, summary.total)
    with _progress(progress_root, sink) as folder:
        state = _Progress(folder, fingerprint, restart)
        first_row = 1  # of the chunk, counting the source's data rows from 1
        for index, chunk in enumerate(iter_table(source, chunk_rows=chunk_rows, types=types), start=1):
            where = f"batch source {redact_uri(source)}, chunk {index}"
            ids = _ids(chunk, id_column, where, first_row)
            keep = ~np.isin(np.arange(first_row, first_row + len(chunk)), repeats)
            done = state.done(index, ids)
            if done is None:
                result = _score_chunk(scorer, chunk[keep].reset_index(drop=True), id_column,
                                      retries, retry_delay, summary, where, first_row)
                result[VERSION_COLUMN] = version
                result[TIME_COLUMN] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                done = state.save(index, ids, result, dropped=int((~keep).sum()))
            else:
                summary.resumed += 1
            summary.add(done)
            summary.seconds = time.perf_counter() - start
            first_row += len(chunk)
            if on_progress is not None:
                on_progress(summary.chunks, summary)
        state.write_sink(sink, summary.chunks)
    if summary.duplicates_dropped:
        log.warning("batch source %s: %d repeated id(s) not scored again (duplicates: keep_first)",
                    redact_uri(source), summary.duplicates_dropped)
    summary.seconds = time.perf_counter() - start
    return summary


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def _progress(root: Path | None, sink: str) -> Iterator[Path]:
    """The progress folder of `sink`, removed once the sink is written (kept on failure)."""
    if root is None:
        with tempfile.TemporaryDirectory(prefix="vfl-batch-") as tmp:
            yield Path(tmp)
        return
    folder = private_dir(Path(root) / _sha(sink)[:24])  # the store's: 0700, files 0600
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class _Progress:
    """The chunks scored so far for one sink: Parquet parts and a manifest of their stats."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any], restart: bool) -> None:
        self.folder = folder
        self.manifest: dict[str, Any] = {**fingerprint, "chunks": {}}
        path = folder / MANIFEST
        if path.exists() and not restart:
            saved = json.loads(path.read_text())
            changed = [k for k in fingerprint if saved.get(k) != fingerprint[k]]
            if changed:
                log.warning("saved progress of this sink was for another %s; starting over",
                            ", ".join(k.replace("_", " ") for k in changed))
            elif saved["chunks"]:
                self.manifest = saved
                log.info("resuming: %d chunk(s) already scored", len(saved["chunks"]))
        for part in folder.glob("chunk-*.parquet"):
            if part.name.removeprefix("chunk-").removesuffix(".parquet") not in self.manifest["chunks"]:
                part.unlink()

    def done(self, index: int, ids: pd.Series) -> dict[str, Any] | None:
        """The saved statistics of chunk `index`, after checking it holds the same ids."""
        saved = self.manifest["chunks"].get(f"{index:06d}")
        if saved is not None and saved["ids_sha256"] != _ids_digest(ids):
            raise DataError(f"chunk {index} of the batch source holds other ids than when it was "
                            "scored by the interrupted run: the source changed; rerun with "
                            "--restart (restart=True) to score it from the start")
        return saved

    def save(self, index: int, ids: pd.Series, result: pd.DataFrame, dropped: int) -> dict[str, Any]:
        key = f"{index:06d}"
        part = self.folder / f"chunk-{key}.parquet"
        write_table(result, str(part))  # written beside and renamed: a part is whole or absent
        seal(part)
        missing: dict[str, int] = {}
        for names in result["missing"]:
            for name in filter(None, names.split(",")):
                missing[name] = missing.get(name, 0) + 1
        stats = {"rows": len(result), "scored": int(result["score"].notna().sum()),
                 "missing": missing, "dropped": dropped, "ids_sha256": _ids_digest(ids)}
        self.manifest["chunks"][key] = stats
        tmp = self.folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.manifest))
        seal(tmp)
        tmp.replace(self.folder / MANIFEST)
        return stats

    def write_sink(self, sink: str, chunks: int) -> None:
        """Every part, in chunk order, to the sink (replaced as a whole)."""
        staged = _SqlStaging(sink) if parse_uri(sink).kind == "sql" else None
        try:
            with open_writer(staged.uri if staged else sink, mode="replace") as writer:
                for index in range(1, chunks + 1):
                    writer.write(read_table(str(self.folder / f"chunk-{index:06d}.parquet")))
            if staged is not None:
                staged.swap()
        except BaseException:
            if staged is not None:
                staged.discard()
            raise


def _ids_digest(ids: pd.Series) -> str:
    return hashlib.sha256(id_hashes(ids).tobytes()).hexdigest()


def _ids(chunk: pd.DataFrame, id_column: str, where: str, first_row: int) -> pd.Series:
    if id_column not in chunk.columns:
        raise DataError(f"{where}: no id column '{id_column}' (columns: {list(chunk.columns)})")
    ids = chunk[id_column].reset_index(drop=True)
    empty = np.flatnonzero(ids.isna().to_numpy())
    if len(empty):
        raise DataError(f"{where}, row {first_row + int(empty[0])}: empty id in column "
                        f"'{id_column}' ({len(empty)} empty in this chunk)")
    return ids


def _repeated_rows(source: str, id_column: str, types: dict[str, str] | None, chunk_rows: int,
                   duplicates: str, total: int | None) -> np.ndarray:
    """The source's rows (counted from 1) whose id appeared on an earlier row, found before
    any chunk is scored; DataError naming both rows with ``duplicates: error``.

    Holds a 64-bit hash per row (8 bytes), then reads the ids of only the rows whose hash
    repeats again and compares them exactly: never every id of the source at once.
    """
    def chunks() -> Iterator[tuple[str, int, pd.Series]]:
        first_row = 1
        for index, chunk in enumerate(iter_table(source, chunk_rows=chunk_rows, columns=[id_column],
                                                 types=types), start=1):
            where = f"batch source {redact_uri(source)}, chunk {index}"
            yield where, first_row, _ids(chunk, id_column, where, first_row)
            first_row += len(chunk)

    hashes, n = np.empty(total or chunk_rows, dtype=np.uint64), 0  # sized once when counted
    for _, _, ids in chunks():
        if n + len(ids) > len(hashes):
            hashes = np.resize(hashes, max(2 * len(hashes), n + len(ids)))
        hashes[n:n + len(ids)] = id_hashes(ids)
        n += len(ids)
    repeated = repeated_hashes(hashes[:n])
    del hashes
    if not len(repeated):
        return np.zeros(0, dtype=np.int64)
    first: dict[Any, int] = {}
    drops: list[int] = []
    for where, first_row, ids in chunks():
        suspects = np.flatnonzero(np.isin(id_hashes(ids), repeated))
        for i, value in zip(suspects.tolist(), ids.iloc[suspects].tolist(), strict=True):
            row = first_row + i
            earlier = first.setdefault(value, row)
            if earlier == row:
                continue
            if duplicates == "error":
                raise DataError(
                    f"{where}, row {row}: id {value!r} already appeared at row {earlier} "
                    "(duplicates: error); set duplicates: keep_first on the dataset to score "
                    "the first of each")
            drops.append(row)
    return np.array(drops, dtype=np.int64)


def _score_chunk(scorer: GuestScorer, chunk: pd.DataFrame, id_column: str, retries: int, delay: float,
                 summary: BatchSummary, where: str, first_row: int) -> pd.DataFrame:
    """id, score, missing for a chunk; a bad input value is reported with its row."""
    if chunk.empty:  # every id of the chunk was scored earlier in the source (keep_first)
        return pd.DataFrame({id_column: chunk[id_column], "score": np.zeros(0), "missing": []})
    guest_columns = scorer.bundle.columns
    features = chunk[guest_columns] if all(c in chunk.columns for c in guest_columns) else None
    try:
        result = _with_retries(scorer, chunk[id_column], features, retries, delay, summary, where)
    except DataError as exc:
        bad = None if features is None else _first_bad_row(scorer, features)
        row = "" if bad is None else f", row {first_row + bad} (id {chunk[id_column].tolist()[bad]!r})"
        raise DataError(f"{where}{row}: {exc}") from None
    return result.rename(columns={"id": id_column})


def _first_bad_row(scorer: GuestScorer, features: pd.DataFrame) -> int | None:
    """The first row whose features the guest's part refuses (a failing prefix grows)."""
    def fails(n: int) -> bool:
        try:
            scorer.bundle.features(features.iloc[:n])
        except DataError:
            return True
        return False

    if not fails(len(features)):
        return None  # the error was not about the features (e.g. a host's)
    ok, bad = 0, len(features)  # features[:ok] pass, features[:bad] fail
    while bad - ok > 1:
        mid = (ok + bad) // 2
        ok, bad = (ok, mid) if fails(mid) else (mid, bad)
    return bad - 1


def _with_retries(scorer: GuestScorer, ids: pd.Series, features: pd.DataFrame | None, retries: int,
                  delay: float, summary: BatchSummary, where: str) -> pd.DataFrame:
    for attempt in range(retries + 1):
        try:
            return scorer.score(ids, features)
        except (PeerError, TimeoutError, ConnectionError) as exc:
            if attempt == retries:
                raise
            summary.retries += 1
            log.warning("%s failed (%s); retry %d of %d in %.1fs", where, exc,
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

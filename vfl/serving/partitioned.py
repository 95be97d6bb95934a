"""A feature table that stays on the party's workers, partitioned by id, for scoring.

With ``compute: {engine: dask}`` a party's service (and `vfl score`) never loads a served
Parquet or CSV table (one file, or a directory of part files). On first use, tasks on the
workers read and validate one part file each (as `load_dataset` validates the whole table),
split its rows into buckets by a 64-bit hash of the id, and every bucket's pieces are joined
on one worker into a frame indexed by id (duplicate ids across part files meet there). The
service keeps only the handles of the buckets.

Asked for some ids, the service hashes them and sends each bucket's ids to a task on the
worker that holds it; the task returns the rows it found. The service holds the rows of one
request (a batch job's chunk) and applies its preprocessing and part to them in one piece,
exactly as the local engine does: batched floating-point arithmetic (a matrix product, a
torch layer) may round a row differently in another batch, so a part applied per bucket on the
workers could change a score's last bits. Scores are bit-identical on either engine.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import pandas as pd

from vfl.connectors import DatasetSpec, read_table
from vfl.connectors.dataset import id_hashes, id_types, validate
from vfl.connectors.uri import redact_uri
from vfl.errors import DataError
from vfl.serving.features import Lookup, conform_ids

log = logging.getLogger("vfl.serving")


def bucket_of(ids: pd.Series, buckets: int) -> np.ndarray:
    """The bucket of each id: its 64-bit hash (`id_hashes`) modulo `buckets`."""
    return (id_hashes(ids) % np.uint64(buckets)).astype(np.int64)


class PartitionedTableSource:
    """A served file table kept on the Dask workers, in `buckets` frames indexed by id.

    Parameters
    ----------
    spec
        The dataset (its ``features`` the columns the model part was trained on).
    executor
        The party's Dask executor (`vfl.parties.compute.DaskExecutor`): ``keep`` and ``submit``.
    parts
        One URI per part file of the table, in table order.
    name
        The dataset's name, for messages.
    """

    def __init__(self, spec: DatasetSpec, executor: Any, parts: list[str], name: str) -> None:
        if len(spec.id_columns) != 1:
            raise DataError(f"serving from '{name}' needs a single id column, got {spec.id_columns}")
        self.spec, self.executor, self.parts, self.name = spec, executor, parts, name
        self.id_column = spec.id_columns[0]
        self.columns = list(spec.features or [])
        self.where = f"dataset '{name}' ({redact_uri(spec.uri)})"
        self.types = id_types(spec)  # once here: it may list the table's files
        # the id column's type, from the first part file's schema (one small task)
        kind = executor.submit(_id_kind, parts[0], self.id_column, self.types, self.where).result()
        self.id_kind: str | None = kind
        self._buckets: list[Any] | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Build the buckets on the workers now rather than at the first request."""
        self._built()

    def _built(self) -> list[Any]:
        """The bucket handles, built on the workers at the first request."""
        with self._lock:
            if self._buckets is None:
                n = max(len(self.parts), getattr(self.executor, "_max_workers", 1))
                log.info("%s: partitioning %d part file(s) into %d buckets by id on the workers",
                         self.where, len(self.parts), n)
                splits = [self.executor.keep(split_part, uri, self.spec, self.types, self.name, p,
                                             len(self.parts), n)
                          for p, uri in enumerate(self.parts)]
                buckets = [self.executor.keep(join_bucket, self.spec.duplicates, self.where,
                                              *[self.executor.keep(_piece, s, b) for s in splits])
                           for b in range(n)]
                rows = sum(self.executor.submit(len, b).result() for b in buckets)  # errors surface here
                if not rows:
                    raise DataError(f"{self.where}: the table is empty")
                log.info("%s: %d rows on the workers", self.where, rows)
                self._buckets = buckets
            return self._buckets

    def lookup(self, ids: pd.Series) -> Lookup:
        """The rows of `ids` found, in the asked order, read from the buckets on the workers."""
        ids = conform_ids(pd.Series(ids).reset_index(drop=True), self.id_kind)
        buckets = self._built()
        which = bucket_of(ids, len(buckets))
        asked = {b: np.flatnonzero(which == b) for b in np.unique(which).tolist()}
        futures = {b: self.executor.submit(rows_found, buckets[b], ids.iloc[at])
                   for b, at in asked.items()}
        found = np.zeros(len(ids), dtype=bool)
        order, pieces = [], []
        for b, future in futures.items():
            hit, rows = future.result()
            found[asked[b][hit]] = True
            order.append(asked[b][hit])
            pieces.append(rows)
        if not found.any():
            return Lookup(pieces[0] if pieces else pd.DataFrame(columns=self.columns), found)
        back = np.argsort(np.concatenate(order), kind="stable")  # to the asked order
        rows = pd.concat(pieces, ignore_index=True).iloc[back].reset_index(drop=True)
        return Lookup(rows, found)


# --- tasks on the workers ----------------------------------------------------------------------


def _id_kind(uri: str, id_column: str, types: dict[str, str], where: str) -> str:
    try:
        ids = read_table(uri, columns=[id_column], types=types)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    return "int" if ids[id_column].dtype.kind in "iu" else "str"


def split_part(uri: str, spec: DatasetSpec, types: dict[str, str], name: str, p: int, parts: int,
               buckets: int) -> list[pd.DataFrame]:
    """Part file `p` of `parts`, read (ids typed as `types`, the dataset's `id_types`) and
    validated, cut into `buckets` frames by id hash (rows in file order within each)."""
    wanted = [*spec.id_columns, *(spec.features or []), *([spec.label] if spec.label else [])]
    try:
        frame = read_table(uri, columns=wanted if spec.features is not None else None, types=types)
    except DataError as exc:
        raise DataError(f"dataset '{name}' ({redact_uri(spec.uri)}): {exc}") from None
    if frame.empty and parts > 1:  # an empty part file of a directory (Spark writes them)
        return []
    data = validate(frame, spec, f"{name}, part {p + 1} of {parts}")
    table = data.X.set_axis(pd.Index(data.ids.iloc[:, 0]), axis=0)
    which = bucket_of(data.ids.iloc[:, 0], buckets)
    return [table[which == b] for b in range(buckets)]


def _piece(split: list[pd.DataFrame], b: int) -> pd.DataFrame | None:
    return split[b] if split else None


def join_bucket(duplicates: str, where: str, *pieces: pd.DataFrame | None) -> pd.DataFrame:
    """One bucket's pieces (in part file order) as one frame indexed by id; an id in two part
    files is refused (``duplicates: error``) or kept from the first (``keep_first``)."""
    present = [piece for piece in pieces if piece is not None]
    if not present:  # every part file is empty (refused by the caller)
        return pd.DataFrame()
    frame = pd.concat(present)
    repeated = frame.index.duplicated(keep="first")
    if repeated.any():
        if duplicates == "error":
            shown = frame.index[repeated][:5].tolist()
            raise DataError(f"{where}: {int(repeated.sum())} id(s) appear in more than one part "
                            f"file, e.g. {shown}; set duplicates: keep_first to keep the first of each")
        frame = frame[~repeated]
    return frame


def rows_found(table: pd.DataFrame, ids: pd.Series) -> tuple[np.ndarray, pd.DataFrame]:
    """Which of `ids` (positions) the bucket holds, and their rows in the asked order."""
    pos = table.index.get_indexer(pd.Index(ids))
    hit = np.flatnonzero(pos >= 0)
    return hit, table.iloc[pos[hit]].reset_index(drop=True)

"""PSI ids that stay on the party's workers: a table read partition by partition.

When the party's compute engine reads tables on its workers (``compute: {engine: dask}``),
its service never loads the id columns of a table `table_parts` splits (a Parquet or CSV
file or directory of part files, local or on HDFS, each file a partition; a SQL table, each
range of its partition column a partition). Tasks on the workers read, check and normalise one
partition each, hash and multiply its ids, and return only points; the service holds

- while it checks for duplicate ids: a 64-bit hash per row (then the encoded ids of the few
  rows whose hashes repeat, compared exactly);
- while it streams: the secret order (a table position per row, int32 below 2**31 rows, and
  a partition label, int32) and the chunks in flight;
- at the end: the encoded ids of the intersection, to hand its rows out in id order.

The secret order is uniform over all orders of the rows, as with the table in memory. It is
built from two independent draws: each partition shuffles its own rows (sorting a ChaCha20
keystream from a fresh 256-bit seed, recomputed by each task of that partition), and the
service draws the uniformly random interleaving of the partitions (`secure_permutation` of
the partition labels). Every order of the n rows comes from exactly one pair:
n! / prod(n_p!) interleavings times prod(n_p!) orders within the partitions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from vfl.connectors import DatasetSpec, read_table
from vfl.connectors.dataset import check_ids, id_hashes, id_types, repeated_hashes
from vfl.connectors.tables import table_parts
from vfl.connectors.uri import redact_uri
from vfl.errors import DataError
from vfl.parties.runtime import PartyRuntime
from vfl.psi.ids import Duplicates, encode_rows, id_columns, normalize
from vfl.psi.stream import chunk_bounds, ordered, secure_permutation
from vfl.psi.x25519 import POINT, hash_encrypt

EXAMPLES = 5
ROUND = 16  # chunks fed by one task per partition: a task reads its whole partition's ids


@dataclass(frozen=True)
class IdTable:
    """A dataset's id columns where they are stored: one URI per partition (picklable: every
    task carries it and reads its own partition)."""

    parts: list[str]
    columns: list[str]
    types: dict[str, str]
    duplicates: Duplicates
    where: str


def psi_ids(party: PartyRuntime, name: str) -> pd.DataFrame | IdTable:
    """The ids PSI intersects for the party's dataset `name`: left on the workers (`IdTable`)
    when its engine reads tables there and `table_parts` splits the dataset's table (Parquet/
    CSV files, local or on HDFS; a SQL table with a partition column); otherwise the loaded
    dataset's id columns."""
    if name not in party.config.datasets:
        party.dataset(name)  # the ConfigError naming the configured datasets
    spec = DatasetSpec.model_validate(party.config.datasets[name])
    parts = table_parts(spec.uri) if party.compute.partitioned_tables else None
    if parts is None:
        return party.dataset(name).ids
    return IdTable(parts, list(spec.id_columns), id_types(spec), spec.duplicates,
                   f"dataset {name!r} ({redact_uri(spec.uri)})")


class PartitionedIds:
    """An `IdTable` prepared for one PSI run: partition sizes, duplicates found, normalised
    as the run agreed. Positions are the table's row numbers from 0, in file order."""

    def __init__(self, table: IdTable, pool: Executor, norm: dict[str, Any]) -> None:
        self.table, self.pool, self.normalization = table, pool, norm
        sizes, repeated = self._hashes()
        self.offsets = np.cumsum([0, *sizes])
        if self.offsets[-1] == 0:
            raise DataError(f"{table.where}: the id table {table.columns} is empty")
        self.drops = self._duplicates(repeated)
        self.kept = [size - len(d) for size, d in zip(sizes, self.drops, strict=True)]
        self.n = sum(self.kept)
        # table positions: 4 bytes a row while the table has fewer than 2**31 rows
        self.position = np.int32 if self.offsets[-1] < 2**31 else np.int64

    def _hashes(self) -> tuple[list[int], np.ndarray]:
        """Every partition's row count, and the 64-bit id hashes that occur more than once
        in the table: every row's hash is held once (8 bytes a row), each partition's let go
        as it is copied in."""
        futures = [self.pool.submit(part_hashes, self.table, p, self.normalization)
                   for p in range(len(self.table.parts))]
        hashes = [future.result() for future in futures]
        sizes = [len(h) for h in hashes]
        every = np.empty(sum(sizes), dtype=np.uint64)  # pages taken as they are written
        for p, at in enumerate(np.cumsum([0, *sizes[:-1]]).tolist()):
            every[at:at + sizes[p]] = hashes[p]
            hashes[p] = every[:0]  # let go of the partition's copy
        return sizes, repeated_hashes(every)

    def _duplicates(self, repeated: np.ndarray) -> list[np.ndarray]:
        """Per partition, the rows that repeat an earlier id (DataError with duplicates:
        error). Only rows whose hash repeats are fetched and compared exactly."""
        drops = [np.zeros(0, dtype=np.int64) for _ in self.table.parts]
        if not len(repeated):
            return drops
        found = [self.pool.submit(part_suspects, self.table, p, self.normalization, repeated)
                 for p in range(len(self.table.parts))]
        suspects = [future.result() for future in found]
        encoded = [self.pool.submit(part_encoded, self.table, p, self.normalization, rows)
                   for p, rows in enumerate(suspects)]
        first: dict[bytes, int] = {}
        repeats: list[tuple[int, int]] = []  # (row, row of its first appearance), from 1
        for p, (rows, future) in enumerate(zip(suspects, encoded, strict=True)):
            dropped = []
            for row, value in zip(rows.tolist(), future.result().values(), strict=True):
                table_row = int(self.offsets[p]) + row + 1
                earlier = first.setdefault(value, table_row)
                if earlier != table_row:
                    repeats.append((table_row, earlier))
                    dropped.append(row)
            drops[p] = np.array(dropped, dtype=np.int64)
        if repeats and self.table.duplicates == "error":
            shown = ", ".join(f"row {r} (as row {e})" for r, e in repeats[:EXAMPLES])
            raise DataError(f"{self.table.where}: {len(repeats)} duplicate id row(s) in "
                            f"{self.table.columns}, e.g. {shown}; set duplicates: keep_first "
                            "to keep the first of each")
        return drops

    def encrypted(self, pool: Executor, key: bytes, salt: bytes, chunk: int,
                  stop: threading.Event) -> tuple[np.ndarray, Iterator[bytes]]:
        """``key.u(x)`` for every id, in chunks of `chunk`, in a secret uniform order; and
        that order (table positions, filled in as the chunks are made)."""
        order = np.empty(self.n, dtype=self.position)
        return order, self._chunks(order, pool, key, salt, chunk, stop)

    def _labels(self) -> np.ndarray:
        """The partition of each row of the secret order: a uniformly random interleaving
        (4 bytes a row; the permutation it comes from is let go once read)."""
        ends = np.cumsum(self.kept)
        permutation = secure_permutation(self.n)
        labels = np.empty(self.n, dtype=np.int32)
        for lo, hi in chunk_bounds(self.n, 1 << 20):
            labels[lo:hi] = np.searchsorted(ends, permutation[lo:hi], side="right")
        return labels

    def _chunks(self, order: np.ndarray, pool: Executor, key: bytes, salt: bytes, chunk: int,
                stop: threading.Event) -> Iterator[bytes]:
        labels = self._labels()
        feeds = [_Feed(ordered(pool, part_slice, self._slices(p, os.urandom(32), key, salt, chunk),
                               stop, window=2)) for p in range(len(self.kept))]
        for lo, hi in chunk_bounds(self.n, chunk):
            here = labels[lo:hi]
            block = np.empty((hi - lo, POINT), dtype=np.uint8)
            for p in np.unique(here).tolist():
                at = np.flatnonzero(here == p)
                rows, points = feeds[p].take(len(at))
                block[at] = points
                order[lo + at] = self.offsets[p] + rows
            yield block.tobytes()

    def _slices(self, p: int, seed: bytes, key: bytes, salt: bytes,
                chunk: int) -> Iterator[tuple[Any, ...]]:
        """The tasks of partition `p`: each takes its share of `ROUND` chunks (every chunk
        draws on every partition), so a round of tasks feeds `ROUND` chunks."""
        size = max(1, -(-ROUND * chunk * self.kept[p] // self.n))
        for lo, hi in chunk_bounds(self.kept[p], size):
            yield self.table, p, self.normalization, self.drops[p], seed, lo, hi, key, salt

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The table positions `positions`, sorted by their ids' canonical bytes (the order
        in which every party hands out the common rows)."""
        part = np.searchsorted(self.offsets[1:], positions, side="right")
        futures = {p: self.pool.submit(part_encoded, self.table, p, self.normalization,
                                       positions[part == p] - self.offsets[p])
                   for p in np.unique(part).tolist()}
        encoded = np.empty(len(positions), dtype=object)
        for p, future in futures.items():
            at = np.flatnonzero(part == p)
            for i, value in zip(at.tolist(), future.result().values(), strict=True):
                encoded[i] = value
        return positions[np.argsort(encoded, kind="stable")].astype(np.int64)  # as in memory


def table_rows(table: IdTable, rows: np.ndarray) -> pd.DataFrame:
    """The id columns of the table's rows `rows`, in that order, read one partition at a time
    (what the caller holds: one partition's ids and the rows asked for)."""
    start = 0
    picked: list[pd.DataFrame] = []
    placed: list[np.ndarray] = []
    for part in table.parts:
        frame = read_table(part, columns=table.columns, types=table.types)
        here = np.flatnonzero((rows >= start) & (rows < start + len(frame)))
        picked.append(frame.iloc[rows[here] - start])
        placed.append(here)
        start += len(frame)
        del frame
    joined = pd.concat(picked, ignore_index=True)
    return joined.iloc[np.argsort(np.concatenate(placed), kind="stable")].reset_index(drop=True)


@dataclass(frozen=True)
class Packed:
    """Byte strings as one buffer and their end offsets: what a task returns instead of a
    list of small bytes objects, which costs the service many times their size to receive."""

    data: bytes
    ends: np.ndarray

    @classmethod
    def of(cls, values: list[bytes]) -> Packed:
        return cls(b"".join(values), np.cumsum([len(v) for v in values], dtype=np.int64))

    def values(self) -> list[bytes]:
        bounds = [0, *self.ends.tolist()]
        return [self.data[bounds[i]:bounds[i + 1]] for i in range(len(self.ends))]


class _Feed:
    """One partition's stream of (rows, points) slices, taken from in any counts."""

    def __init__(self, slices: Iterator[tuple[np.ndarray, bytes]]) -> None:
        self.slices = slices
        self.rows = np.zeros(0, dtype=np.int64)
        self.points = np.zeros((0, POINT), dtype=np.uint8)

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        while len(self.rows) < count:
            rows, points = next(self.slices)
            self.rows = np.concatenate([self.rows, rows])
            self.points = np.concatenate([self.points, np.frombuffer(points, np.uint8)
                                          .reshape(-1, POINT)])
        out = self.rows[:count], self.points[:count]
        self.rows, self.points = self.rows[count:], self.points[count:]
        return out


# --- tasks on the workers: each reads its own partition ---------------------------------------


def _read(table: IdTable, p: int, norm: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    where = f"{table.where}, part {p + 1} of {len(table.parts)}"
    try:
        frame = read_table(table.parts[p], columns=table.columns, types=table.types)
    except DataError as exc:
        raise DataError(f"{table.where}: {exc}") from None
    check_ids(frame, where)
    return normalize(frame, norm), where


def part_hashes(table: IdTable, p: int, norm: dict[str, Any]) -> np.ndarray:
    """A 64-bit hash of every row's id in partition `p` (its ids checked on the way)."""
    frame, where = _read(table, p, norm)
    id_columns(frame, where)  # refuses a column that cannot be an id
    return id_hashes(frame)


def part_suspects(table: IdTable, p: int, norm: dict[str, Any], repeated: np.ndarray) -> np.ndarray:
    """The rows of partition `p` whose id hash is among `repeated` (sorted)."""
    return np.flatnonzero(np.isin(part_hashes(table, p, norm), repeated))


def part_encoded(table: IdTable, p: int, norm: dict[str, Any], rows: np.ndarray) -> Packed:
    """The canonical bytes of the ids of `rows` of partition `p`, packed."""
    frame, where = _read(table, p, norm)
    return Packed.of(encode_rows(id_columns(frame.iloc[rows], where)))


def part_slice(table: IdTable, p: int, norm: dict[str, Any], drop: np.ndarray, seed: bytes,
               lo: int, hi: int, key: bytes, salt: bytes) -> tuple[np.ndarray, bytes]:
    """Rows `lo:hi` of partition `p` in its secret order (drawn from `seed`), and their
    ``key.u(x)``."""
    frame, where = _read(table, p, norm)
    rows = _shuffled(np.delete(np.arange(len(frame)), drop), seed)[lo:hi]
    return rows, hash_encrypt(key, salt, id_columns(frame.iloc[rows], where))


def _shuffled(rows: np.ndarray, seed: bytes) -> np.ndarray:
    """`rows` in the uniformly random order a 256-bit `seed` draws (ChaCha20 keystream)."""
    stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
    draws = np.frombuffer(stream.update(bytes(8 * len(rows))), dtype=np.uint64)
    return rows[np.argsort(draws, kind="stable")]


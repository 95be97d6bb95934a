"""ECDH-PSI on X25519 (docs/protocols.md §2), guest and host side by side.

With ``u(x) = SHA-256(domain || s || x)``, secret scalars ``a`` (guest) and ``b`` (host) and
``X25519(k, .)`` written ``k.``, the messages of one guest-host pair are:

1. ``hello``   both: a fresh salt, the set size, the chunk size, the id normalisation;
               ``s = SHA-256(s_g || s_h)``. The host refuses at once if a set is below its
               ``min_intersection`` or the parties normalise their ids differently.
2. ``a``       guest -> host: ``a.u(x_i)`` in a secret random order.
   ``b``       host -> guest: ``b.u(y_j)`` in a secret random order (concurrently).
3. ``ab``      guest -> host: ``a.(b.u(y_j))`` in the order received (shuffled again when
               ``cardinality_only``). The host computes ``b.(a.u(x_i))`` meanwhile, and now
               knows the intersection size first: it checks its policy and sends
4. ``verdict`` ok / refused (names the rule) / empty, and only if ok
   ``ba``      host -> guest: ``b.(a.u(x_i))`` in the order received (shuffled when
               ``cardinality_only``).
5. Both sort the common doubly encrypted values: that is the intersection order, identical
   on both sides, found without sending a single position.
6. ``final``   guest -> each host: positions into the pair's order of the rows common to all
   hosts (one host: all of them); ``final_verdict`` host -> guest after its policy check.

All scalar multiplications run in chunks on the party's process pool and stream over the
channel as they finish. What each party learns is in docs/psi.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from vfl.errors import ConfigError, DataError, PolicyError, ProtocolError
from vfl.parties.context import Context
from vfl.psi.ids import (
    Column,
    Duplicates,
    canonical_order,
    dedupe,
    id_columns,
    id_frame,
    normalization,
    normalize,
    take,
)
from vfl.psi.partitioned import IdTable, PartitionedIds, table_rows
from vfl.psi.stream import (
    Progress,
    chunk_bounds,
    executor_of,
    in_parallel,
    joined,
    ordered,
    recv_chunks,
    secure_permutation,
    send_chunks,
    split,
)
from vfl.psi.x25519 import (
    POINT,
    SALT,
    encrypt,
    hash_encrypt,
    new_key,
    new_salt,
    session_salt,
)

VERSION = 2  # 2: the hello carries the id normalisation
WARN_RATIO = 0.5  # warn when the intersection is below this share of the smaller set
CHUNK = 8192  # ids per chunk: ~0.25 s of work for one core, 256 KiB on the wire
MAX_CHUNK = 1 << 20
MAX_SET = 1 << 34


@dataclass(frozen=True)
class PsiResult:
    """One party's outcome. `rows` index its own `ids` in the common order (None if
    cardinality_only); `size` is the final intersection size; `own_size` counts distinct ids."""

    rows: np.ndarray | None
    size: int
    own_size: int
    peer_sizes: dict[str, int]
    cardinality_only: bool = False
    pair_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def peer_size(self) -> int:
        """The other party's set size (for a guest with several hosts: see `peer_sizes`)."""
        if len(self.peer_sizes) != 1:
            raise ValueError(f"several peers {sorted(self.peer_sizes)}; use peer_sizes")
        return next(iter(self.peer_sizes.values()))


def align(table: pd.DataFrame | IdTable, result: PsiResult) -> pd.DataFrame:
    """This party's own table, rows in the common intersection order (same customers as the
    peers' aligned tables, row by row). `table` is the one whose id columns went into PSI
    (an `IdTable`: its id columns of those rows, read on the workers)."""
    if result.rows is None:
        raise DataError("a cardinality_only PSI result has no rows to align")
    if isinstance(table, IdTable):
        return table_rows(table, result.rows)
    if len(result.rows) and int(result.rows.max()) >= len(table):
        raise DataError(f"table has {len(table)} rows but the PSI result refers to row "
                        f"{int(result.rows.max())}; align the table PSI ran on")
    return table.iloc[result.rows].reset_index(drop=True)


# --- the two roles --------------------------------------------------------------------------


def guest(ctx: Context, ids: pd.DataFrame | pd.Series | IdTable, *, cardinality_only: bool = False,
          duplicates: Duplicates = "error", chunk_size: int = CHUNK,
          normalize_ids: dict[str, Any] | None = None, warn_ratio: float = WARN_RATIO) -> PsiResult:
    """The bank's side: intersect with every host, then fix the alignment common to all.

    `normalize_ids` ({strip, lower, zero_pad}; off by default) must equal every host's. A
    final intersection below `warn_ratio` of the smaller party's set is warned about (0: never).
    `ids` in an `IdTable` stay on the party's workers (`vfl.psi.partitioned`; its dataset's
    own ``duplicates`` rule applies); the result's rows then number the table's rows.
    """
    mine = _Ids.of(ctx, ids, duplicates, normalize_ids)
    _check_chunk(chunk_size)
    if cardinality_only and len(ctx.hosts) > 1:
        raise ConfigError("cardinality_only PSI runs with one host at a time: the size common "
                          f"to all of {ctx.hosts} would need a multi-party PSI-CA")
    stop = threading.Event()
    pairs = dict(zip(ctx.hosts, in_parallel(stop, *[
        partial(_guest_pair, ctx.child(h), h, mine, cardinality_only, chunk_size)
        for h in ctx.hosts]), strict=True))
    peer_sizes = {h: p.peer_size for h, p in pairs.items()}
    pair_sizes = {h: p.size for h, p in pairs.items()}
    if cardinality_only:
        return PsiResult(None, pair_sizes[ctx.hosts[0]], mine.n, peer_sizes, True, pair_sizes)

    orders = {h: p.rows for h, p in pairs.items() if p.rows is not None}
    first = orders[ctx.hosts[0]]
    common = first[np.logical_and.reduce([np.isin(first, o) for o in orders.values()])]
    for h, order in orders.items():
        position = np.empty(mine.n, dtype=np.int64)
        position[order] = np.arange(len(order))
        ctx.child(h).send(h, "final", position[common])
    if len(common) == 0:
        raise _empty(ctx, f"the intersections with {ctx.hosts} have no id in common")
    for h in ctx.hosts:
        _obey(ctx.child(h).recv(h, "final_verdict"), ctx, h)
    ctx.log.info("PSI done: %d common rows of %d", len(common), mine.n)
    _warn_if_small(ctx, len(common), mine, peer_sizes, warn_ratio)
    return PsiResult(mine.rows(common), len(common), mine.n, peer_sizes, False, pair_sizes)


def host(ctx: Context, ids: pd.DataFrame | pd.Series | IdTable, *, min_intersection: int = 1,
         cardinality_only: bool = False, duplicates: Duplicates = "error",
         chunk_size: int = CHUNK, normalize_ids: dict[str, Any] | None = None) -> PsiResult:
    """A partner's side. `min_intersection` and `cardinality_only` are this host's policy:
    below the minimum it refuses before the guest learns anything; with cardinality_only it
    refuses to reveal more than the size (a guest asking only for the size is always served).
    `normalize_ids` is this host's own id normalisation: a guest with another is refused.
    `ids` may stay on the workers, as for `guest`."""
    mine = _Ids.of(ctx, ids, duplicates, normalize_ids)
    _check_chunk(chunk_size)
    if isinstance(min_intersection, bool) or not isinstance(min_intersection, int) \
            or min_intersection < 0:
        raise ConfigError(f"min_intersection must be a non-negative int, got {min_intersection!r}")
    pctx = ctx.child(ctx.name)
    pair = _host_pair(pctx, mine, min_intersection, cardinality_only, chunk_size)
    peer_sizes = {ctx.guest: pair.peer_size}
    if pair.rows is None:
        return PsiResult(None, pair.size, mine.n, peer_sizes, True, {ctx.guest: pair.size})

    final = pctx.recv(ctx.guest, "final")
    if not (isinstance(final, np.ndarray) and final.ndim == 1 and final.dtype.kind == "i"
            and (len(final) == 0 or (final.min() >= 0 and final.max() < pair.size))
            and len(np.unique(final)) == len(final)):
        raise ProtocolError(f"{ctx.name}: 'final' from '{ctx.guest}' is not a list of distinct "
                            f"positions below {pair.size}")
    if len(final) == 0:
        raise _empty(ctx, "no id is common to all parties")
    _obey(_verdict(pctx, ctx.guest, len(final), min_intersection, "final_verdict"), ctx, None)
    return PsiResult(mine.rows(pair.rows[final]), len(final), mine.n, peer_sizes, False,
                     {ctx.guest: pair.size})


# --- one guest-host pair --------------------------------------------------------------------


@dataclass(frozen=True)
class _Ids:
    """The ids PSI uses: encoded columns, and their positions in the caller's table."""

    columns: list[Column]
    keep: np.ndarray
    normalization: dict[str, Any]

    @property
    def n(self) -> int:
        return len(self.keep)

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The common rows, as rows of the caller's table, handed out sorted by id: the
        order found by the protocol depends on the session's keys; this one is the same on
        every run, so a job's split, resume and reruns line up. It costs no privacy: both
        parties know the ids they share."""
        return self.keep[positions[canonical_order(take(self.columns, positions))]]

    def encrypted(self, pool: Executor, key: bytes, salt: bytes, chunk: int,
                  stop: threading.Event) -> tuple[np.ndarray, Iterator[bytes]]:
        """``key.u(x)`` for every id, in chunks, in a secret random order; and that order."""
        order = secure_permutation(self.n)
        calls = ((key, salt, take(self.columns, order[lo:hi]))
                 for lo, hi in chunk_bounds(self.n, chunk))
        return order, ordered(pool, hash_encrypt, calls, stop)

    @classmethod
    def of(cls, ctx: Context, ids: pd.DataFrame | pd.Series | IdTable, duplicates: Duplicates,
           normalize_ids: dict[str, Any] | None) -> _Ids | PartitionedIds:
        where = f"{ctx.name}: PSI ids"
        norm = normalization(normalize_ids, where)
        if isinstance(ids, IdTable):
            return PartitionedIds(ids, executor_of(ctx), norm)
        frame = normalize(id_frame(ids, where), norm)
        keep = dedupe(frame, duplicates, where)
        return cls(id_columns(frame.iloc[keep], where), keep, norm)


@dataclass(frozen=True)
class _Pair:
    rows: np.ndarray | None  # positions into _Ids, in the pair's intersection order
    size: int
    peer_size: int


def _guest_pair(ctx: Context, host: str, mine: _Ids | PartitionedIds, cardinality_only: bool,
                chunk: int) -> _Pair:
    key, salt = new_key(), new_salt()
    ctx.send(host, "hello", {"version": VERSION, "salt": salt, "size": mine.n, "chunk": chunk,
                             "cardinality_only": cardinality_only,
                             "normalization": mine.normalization})
    hello = ctx.recv(host, "hello")
    _obey(hello, ctx, host)
    hello = _check_hello(hello, ctx, host)
    if hello["normalization"] != mine.normalization:
        raise ProtocolError(f"{ctx.name}: host '{host}' normalises ids as {hello['normalization']}, "
                            f"this party as {mine.normalization}")
    s, m, host_chunk = session_salt(salt, hello["salt"]), hello["size"], hello["chunk"]
    pool, progress, stop = executor_of(ctx), Progress(ctx, mine.n + m), threading.Event()
    order, hashed = mine.encrypted(pool, key, s, chunk, stop)

    def send_a() -> None:  # a.u(x_i), in the secret order
        send_chunks(ctx, host, "a", progress.track(hashed))

    def return_ab() -> bytes:  # a.(b.u(y_j)), in the order received
        calls = ((key, block) for block in recv_chunks(ctx, host, "b", m, host_chunk, stop))
        blocks = progress.track(ordered(pool, encrypt, calls, stop))
        if cardinality_only:
            ab = _shuffled(b"".join(blocks))
            send_chunks(ctx, host, "ab", split(ab, host_chunk))
            return ab
        kept = []
        for k, block in enumerate(blocks):
            ctx.child("ab", k).send(host, "chunk", block)
            kept.append(block)
        return b"".join(kept)

    ab = in_parallel(stop, send_a, return_ab)[1]
    _obey(ctx.recv(host, "verdict"), ctx, host)
    own_in_common = _match(recv_chunks(ctx, host, "ba", mine.n, chunk), ab)
    if cardinality_only:
        return _Pair(None, len(own_in_common), m)
    return _Pair(order[own_in_common], len(own_in_common), m)


def _host_pair(ctx: Context, mine: _Ids | PartitionedIds, min_intersection: int, cardinality_only: bool,
               chunk: int) -> _Pair:
    guest = ctx.guest
    hello = _check_hello(ctx.recv(guest, "hello"), ctx, guest)
    n, guest_chunk, wants_size_only = hello["size"], hello["chunk"], hello["cardinality_only"]
    refusal = None
    if hello["normalization"] != mine.normalization:
        refusal = (f"id normalisation differs: the guest's is {hello['normalization']}, this "
                   f"host's {mine.normalization}; both parties must set the same id_normalize")
    elif cardinality_only and not wants_size_only:
        refusal = "policy cardinality_only=true: this host reveals only the intersection size"
    elif min(n, mine.n) < min_intersection:
        refusal = (f"policy min_intersection={min_intersection}: a set of "
                   f"{'the guest' if n < min_intersection else 'this host'} is smaller")
    if refusal is not None:
        ctx.send(guest, "hello", {"status": "refused", "reason": refusal})
        raise PolicyError(f"{ctx.name}: refused PSI with '{guest}': {refusal}")
    key, salt = new_key(), new_salt()
    ctx.send(guest, "hello", {"status": "ok", "version": VERSION, "salt": salt, "size": mine.n,
                              "chunk": chunk, "cardinality_only": wants_size_only,
                              "normalization": mine.normalization})
    s = session_salt(hello["salt"], salt)
    pool, progress, stop = executor_of(ctx), Progress(ctx, mine.n + n), threading.Event()
    order, hashed = mine.encrypted(pool, key, s, chunk, stop)

    def send_b() -> None:  # b.u(y_j), in the secret order
        send_chunks(ctx, guest, "b", progress.track(hashed))

    def encrypt_a_then_match() -> tuple[bytearray, np.ndarray]:
        # b.(a.u(x_i)), in the order received, held until the verdict; then a.(b.u(y_j))
        # matched against it as it arrives (the guest sends it while b still streams)
        calls = ((key, block) for block in recv_chunks(ctx, guest, "a", n, guest_chunk, stop))
        ba = joined(progress.track(ordered(pool, encrypt, calls, stop)), n)
        return ba, _match(recv_chunks(ctx, guest, "ab", mine.n, chunk, stop), ba)

    ba, own_in_common = in_parallel(stop, send_b, encrypt_a_then_match)[1]
    size = len(own_in_common)
    _obey(_verdict(ctx, guest, size, min_intersection, "verdict", wants_size_only), ctx, None)
    send_chunks(ctx, guest, "ba", split(_shuffled(ba) if wants_size_only else ba, guest_chunk))
    ctx.log.info("PSI pair done: %d common of %d (guest has %d)", size, mine.n, n)
    return _Pair(None if wants_size_only else order[own_in_common], size, n)


# --- small pieces -----------------------------------------------------------------------------


def _match(own: Iterable[bytes], other: bytes | bytearray) -> np.ndarray:
    """Indices into `own` (its chunks, matched as they arrive) of the values also in
    `other`, in sorted-value order; only `other` and the matches are held.

    Sorting the doubly encrypted values is what gives both parties the same order.
    """
    theirs = np.sort(np.frombuffer(other, dtype=f"S{POINT}"))
    index, values, start = [np.zeros(0, np.int64)], [np.zeros(0, f"S{POINT}")], 0
    for block in own:
        mine = np.frombuffer(block, dtype=f"S{POINT}")
        if len(theirs):
            at = np.searchsorted(theirs, mine).clip(max=len(theirs) - 1)
            hit = np.flatnonzero(theirs[at] == mine)
            index.append(start + hit)
            values.append(mine[hit])
        start += len(mine)
    return np.concatenate(index)[np.argsort(np.concatenate(values), kind="stable")]


def _shuffled(points: bytes | bytearray) -> bytes:
    """The points in a fresh secret order: unlinks them from the rows they came from."""
    values = np.frombuffer(points, dtype=f"S{POINT}")
    return values[secure_permutation(len(values))].tobytes()


def _verdict(ctx: Context, guest: str, size: int, min_intersection: int, tag: str,
             size_only: bool = False) -> dict[str, Any]:
    """The host's decision on an intersection of `size`, sent to the guest before anything
    else; a refusal names the rule, never the size."""
    if size == 0 and not size_only:
        verdict = {"status": "empty", "reason": "no common ids"}
    elif size < min_intersection:
        verdict = {"status": "refused", "reason": f"policy min_intersection={min_intersection}: "
                                                  "the intersection is smaller"}
    else:
        verdict = {"status": "ok"}
    ctx.send(guest, tag, verdict)
    return verdict


def _obey(verdict: Any, ctx: Context, peer: str | None) -> None:
    """Raise the error a verdict (or hello) carries: on the host as its own decision, on the
    guest naming the host that decided."""
    if not isinstance(verdict, dict) or verdict.get("status") not in ("ok", "refused", "empty"):
        raise ProtocolError(f"{ctx.name}: malformed verdict from '{peer}' at '{ctx.step}'")
    status, reason = verdict["status"], str(verdict.get("reason", ""))
    who = f"host '{peer}'" if peer else f"'{ctx.name}'"
    if status == "refused":
        raise PolicyError(f"{ctx.name}: {who} refused PSI: {reason}")
    if status == "empty":
        raise _empty(ctx, f"{who} reports {reason}")


def _warn_if_small(ctx: Context, size: int, mine: _Ids | PartitionedIds, peer_sizes: dict[str, int],
                   ratio: float) -> None:
    """Id spellings that differ (case, spaces, leading zeros, int vs text) shrink the
    intersection silently: say so when it is much smaller than every party's set."""
    smaller = min(mine.n, *peer_sizes.values())
    if size < ratio * smaller:
        sizes = ", ".join(f"'{h}' {n}" for h, n in peer_sizes.items())
        ctx.log.warning(
            f"PSI matched {size} ids, {size / smaller:.0%} of the smaller set (this party "
            f"{mine.n}, {sizes}); if the parties should share more customers, their ids may be "
            "spelled differently (case, surrounding spaces, leading zeros, int vs text): compare a "
            "few ids, declare id_types, or agree on id_normalize (strip, lower, zero_pad) in "
            "both parties' dataset configs")


def _empty(ctx: Context, detail: str) -> DataError:
    return DataError(f"{ctx.name}: PSI intersection is empty at step '{ctx.step}' ({detail}); "
                     "check that all parties use the same id columns and types (int 1 and str '1' differ; "
                     "CSV ids are read as text unless the dataset declares id_types)")


def _check_chunk(chunk: int) -> None:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= MAX_CHUNK:
        raise ConfigError(f"chunk_size must be an int in [1, {MAX_CHUNK}], got {chunk!r}")


def _check_hello(msg: Any, ctx: Context, peer: str) -> dict[str, Any]:
    where = f"{ctx.name}: 'hello' from '{peer}' at '{ctx.step}'"
    if not isinstance(msg, dict):
        raise ProtocolError(f"{where}: expected a dict, got {type(msg).__name__}")
    if msg.get("version") != VERSION:
        raise ProtocolError(f"{where}: PSI version {msg.get('version')!r}, expected {VERSION}")
    salt, size, chunk = msg.get("salt"), msg.get("size"), msg.get("chunk")
    if not (isinstance(salt, bytes) and len(salt) == SALT):
        raise ProtocolError(f"{where}: salt must be {SALT} bytes")
    if not (isinstance(size, int) and not isinstance(size, bool) and 0 < size <= MAX_SET):
        raise ProtocolError(f"{where}: set size {size!r} out of range (1..{MAX_SET})")
    if not (isinstance(chunk, int) and not isinstance(chunk, bool) and 1 <= chunk <= MAX_CHUNK):
        raise ProtocolError(f"{where}: chunk size {chunk!r} out of range (1..{MAX_CHUNK})")
    if not isinstance(msg.get("cardinality_only"), bool):
        raise ProtocolError(f"{where}: cardinality_only must be a bool")
    if not isinstance(msg.get("normalization"), dict):
        raise ProtocolError(f"{where}: the id normalisation is missing")
    try:
        return {**msg, "normalization": normalization(msg["normalization"], where)}
    except DataError as exc:
        raise ProtocolError(str(exc)) from None

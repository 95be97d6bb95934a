"""Chunk plumbing for PSI: work pipelined through the process pool and streamed to a peer.

Memory stays bounded by a few chunks in flight per stream; every chunk crosses the channel
as soon as its worker is done, so both parties' pools stay busy while bytes travel.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from vfl.errors import PeerTimeoutError, ProtocolError, VflError
from vfl.parties.context import Context
from vfl.parties.executor import shared_process_pool
from vfl.psi.x25519 import POINT, check_points

WINDOW = 4  # chunks in flight per stream: enough to keep every worker busy
POLL = 5.0  # s: a receiving stream checks this often whether a sibling stream failed


T = TypeVar("T")


class Cancelled(VflError):
    """A sibling stream failed; this one stops instead of finishing useless work."""


def executor_of(ctx: Context) -> Executor:
    return ctx.executor if ctx.executor is not None else shared_process_pool()


def secure_permutation(n: int) -> np.ndarray:
    """A uniformly random order of ``range(n)`` from the OS CSPRNG (hides row positions)."""
    return np.argsort(np.frombuffer(os.urandom(8 * n), dtype=np.uint64), kind="stable")


def chunk_bounds(total: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, total)) for lo in range(0, total, chunk)]


def ordered(pool: Executor, fn: Callable[..., T], calls: Iterable[tuple[Any, ...]],
            stop: threading.Event, window: int = WINDOW) -> Iterator[T]:
    """``fn(*call)`` for every call on the pool, `window` ahead, results in call order."""
    pending: deque[Future[T]] = deque()
    try:
        for call in calls:
            if stop.is_set():
                raise Cancelled("stopped because a parallel PSI stream failed")
            pending.append(pool.submit(fn, *call))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def send_chunks(ctx: Context, peer: str, tag: str, blocks: Iterable[bytes]) -> None:
    for k, block in enumerate(blocks):
        ctx.child(tag, k).send(peer, "chunk", block)


def recv_chunks(ctx: Context, peer: str, tag: str, total: int, chunk: int,
                stop: threading.Event | None = None) -> Iterator[bytes]:
    """The peer's stream `tag` of `total` points in chunks of `chunk`, each validated.

    With `stop`, waits in slices so that a failed sibling stream ends this one too: the
    peer, itself waiting on the failed stream, would otherwise never send.
    """
    for k, (lo, hi) in enumerate(chunk_bounds(total, chunk)):
        data = _recv(ctx.child(tag, k), peer, "chunk", stop)
        yield check_points(data, hi - lo, f"{ctx.name}: '{tag}' chunk {k} from '{peer}'")


def _recv(ctx: Context, peer: str, tag: str, stop: threading.Event | None) -> Any:
    if stop is None:
        return ctx.recv(peer, tag)
    deadline = time.monotonic() + ctx.timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return ctx.recv(peer, tag, timeout=max(0.0, min(POLL, left)))
        except PeerTimeoutError:
            if left <= POLL:
                raise
        if stop.is_set():
            raise Cancelled("stopped because a parallel PSI stream failed")


def split(data: bytes | bytearray, chunk: int) -> Iterator[bytes]:
    step = chunk * POINT
    return (bytes(data[i : i + step]) for i in range(0, len(data), step))


def joined(blocks: Iterable[bytes], points: int) -> bytearray:
    """A stream of `points` points as one buffer, each block written into place as it
    arrives (the blocks and their join are never held at once)."""
    out, at = bytearray(points * POINT), 0
    for block in blocks:
        if at + len(block) > len(out):
            raise ProtocolError(f"a stream of {points} points ran past its end")
        out[at:at + len(block)] = block
        at += len(block)
    if at != len(out):
        raise ProtocolError(f"a stream of {points} points ended after {at // POINT}")
    return out


class Progress:
    """Counts scalar multiplications done and reports them as progress events."""

    def __init__(self, ctx: Context, total: int) -> None:
        self.ctx, self.total, self.done = ctx, total, 0
        self._lock = threading.Lock()

    def track(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        for block in blocks:
            with self._lock:
                self.done += len(block) // POINT
                done = self.done
            self.ctx.progress(done, self.total, unit="points")
            yield block


def _stop_on_failure(future: Future[Any], stop: threading.Event) -> None:
    if future.exception() is not None:
        stop.set()


def in_parallel(stop: threading.Event, *fns: Callable[[], Any]) -> list[Any]:
    """Run `fns` concurrently (threads: they wait on the pool and the channel, not the CPU).

    The first failure sets `stop` so the siblings quit early, and is re-raised.
    """
    with ThreadPoolExecutor(len(fns), thread_name_prefix="vfl-psi") as threads:
        futures = [threads.submit(fn) for fn in fns]
        for future in futures:
            future.add_done_callback(lambda f: _stop_on_failure(f, stop))
        errors = [f.exception() for f in futures]
    first = next((e for e in errors if e is not None and not isinstance(e, Cancelled)), None)
    first = first or next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return [f.result() for f in futures]

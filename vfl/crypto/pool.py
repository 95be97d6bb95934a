"""A pool of precomputed DJN obfuscators ``h_s^alpha mod n^2``, refillable in the background.

Encryption is ``(1 + m n) * r mod n^2``; the obfuscator ``r`` does not depend on the message,
so it can be computed ahead of time (while waiting on the network, between epochs) and taken
at encryption time, leaving one multiplication per value. Each obfuscator is used once.

Security assumption (Damgard, Jurik, Nielsen 2010, "A generalization of Paillier's public-key
system with applications to electronic voting", section 4.2; also SecretFlow HEU): the values
``h_s^alpha`` for ``h_s = (-x^2)^n`` and a random ``alpha`` of ~n_bits/2 bits are
computationally indistinguishable from random n-th residues ``r^n`` -- a short-exponent
assumption on top of the decisional composite residuosity assumption of Paillier itself.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from vfl.crypto import kernels


class ObfuscationPool:
    """Thread-safe store of single-use obfuscators for one public key."""

    def __init__(self, n: int, hs: int) -> None:
        self._n, self._hs = n, hs
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __len__(self) -> int:
        return len(self._items)

    def take(self, count: int) -> list[Any]:
        """Up to ``count`` obfuscators, removed from the pool (never handed out twice)."""
        with self._lock:
            k = min(count, len(self._items))
            return [self._items.popleft() for _ in range(k)]

    def refill(self, target: int, background: bool = False, batch: int = 64) -> None:
        """Fill the pool up to ``target`` items, now or in a daemon thread (GIL permitting,
        the thread makes progress while the party waits on I/O)."""
        if not background:
            self._fill(target, batch)
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._fill, args=(target, batch), name="paillier-obfuscation-pool", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Ask a background refill to stop after its current batch, and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wait(self) -> None:
        """Block until a background refill has finished."""
        if self._thread is not None:
            self._thread.join()

    def _fill(self, target: int, batch: int) -> None:
        while not self._stop.is_set() and len(self._items) < target:
            fresh = kernels.obfuscators(self._n, self._hs, min(batch, target - len(self._items)))
            with self._lock:
                self._items.extend(fresh)

"""Bulk Paillier arithmetic on lists of gmpy2 integers: the hot loops of the engine.

Every public function is top level and takes plain ints / mpz lists, so that a chunk of work
can be shipped to a process pool (`concurrent.futures.Executor`) and run there unchanged.

- Obfuscation (DJN): ``r^n mod n^2`` is replaced by ``h_s^alpha`` with ``h_s = (-x^2)^n``
  fixed per key and ``alpha`` a fresh random exponent of ``n_bits/2 + 64`` bits. The powers
  ``h_s^(d * 2^(w t))`` are tabulated once per process (windows of w = 10 bits up to 2048-bit
  keys, fewer above, keeping a table under 64 MiB), so one obfuscator costs one modular
  multiplication per window of alpha (~109 for a 2048-bit key) instead of a full powmod.
- Decryption: CRT over p^2 and q^2, one exponent shared by a whole batch.
- Products ``prod_j c_j^(e_j)``: Pippenger's bucket method; a window of c bits costs one
  multiplication per nonzero digit plus ~2^(c+1) to fold the buckets, instead of ~1.3 * bits
  multiplications per element for independent powmods. Negative exponents are split off and
  folded in with one modular inverse per product, never turned into huge exponents. Few
  bases shared by many exponent rows get per-base window tables instead (no bucket folding).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

MAX_WINDOW_BITS = 10  # fixed-base table digit
MAX_TABLE_BYTES = 64 << 20
_TABLE_CACHE: dict[tuple[int, int], list[list[Any]]] = {}
_TABLE_CACHE_MAX = 8  # keys per process (parties in one simulation share the pool)
_TABLE_LOCK = threading.Lock()
ONE = mpz(1)


def alpha_bytes(n_bits: int) -> int:
    """Length in bytes of the DJN exponent alpha: n_bits/2 plus a 64-bit margin."""
    return (n_bits // 2 + 64 + 7) // 8


def djn_window(n_bits: int) -> int:
    """Widest table window (<= MAX_WINDOW_BITS) whose table stays under MAX_TABLE_BYTES:
    ``ceil(alpha bits / w) * 2^w`` entries of ``2 n_bits / 8`` bytes."""
    bits, entry = 8 * alpha_bytes(n_bits), 2 * n_bits // 8
    for w in range(MAX_WINDOW_BITS, 4, -1):
        if math.ceil(bits / w) * (1 << w) * entry <= MAX_TABLE_BYTES:
            return w
    return 4


def djn_table(n: int, hs: int) -> list[list[Any]]:
    """``table[t][d] = hs^(d * 2^(w t)) mod n^2`` for every window t of alpha (cached)."""
    key = (int(n), int(hs))
    table = _TABLE_CACHE.get(key)
    if table is None:
        n_bits = int(n).bit_length()
        w = djn_window(n_bits)
        nsq = mpz(n) * mpz(n)
        base = mpz(hs)
        table = []
        for _ in range(math.ceil(8 * alpha_bytes(n_bits) / w)):
            row = [ONE, base]
            for _d in range(2, 1 << w):
                row.append(row[-1] * base % nsq)
            table.append(row)
            base = row[-1] * base % nsq
        with _TABLE_LOCK:
            if len(_TABLE_CACHE) >= _TABLE_CACHE_MAX:
                _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
            _TABLE_CACHE[key] = table
    return table


def obfuscators(n: int, hs: int, count: int) -> list[Any]:
    """``count`` fresh values ``hs^alpha mod n^2`` with alpha uniform over alpha_bytes bytes."""
    table = djn_table(n, hs)
    nsq = mpz(n) * mpz(n)
    nbytes = alpha_bytes(int(n).bit_length())
    w = len(table[0]).bit_length() - 1
    mask = (1 << w) - 1
    out = []
    for _ in range(count):
        alpha = int.from_bytes(os.urandom(nbytes), "big")
        acc = None
        for row in table:
            d = alpha & mask
            alpha >>= w
            if d:
                acc = row[d] if acc is None else acc * row[d] % nsq
        out.append(ONE if acc is None else acc)
    return out


def encrypt_ints(n: int, hs: int, ms: Sequence[int], obf: Sequence[Any] | None = None) -> list[Any]:
    """Ciphertexts ``(1 + m n) * obfuscator mod n^2`` (g = n + 1) of signed integers."""
    n = mpz(n)
    nsq = n * n
    if obf is None:
        obf = obfuscators(int(n), hs, len(ms))
    return [(1 + (mpz(m) % n) * n) * r % nsq for m, r in zip(ms, obf, strict=True)]


def decrypt_ints(p: int, q: int, cs: Sequence[Any]) -> list[Any]:
    """Plaintext residues in [0, n) by CRT: ``m_p = L_p(c^(p-1) mod p^2) * h_p mod p``."""
    p, q = mpz(p), mpz(q)
    n = p * q
    mp = _decrypt_half(p, n, cs)
    mq = _decrypt_half(q, n, cs)
    p_inv = gmpy2.invert(p, q)
    return [a + ((b - a) * p_inv % q) * p for a, b in zip(mp, mq, strict=True)]


def _decrypt_half(p: Any, n: Any, cs: Sequence[Any]) -> list[Any]:
    psq = p * p
    hp = gmpy2.invert((gmpy2.powmod(n + 1, p - 1, psq) - 1) // p, p)
    powered = gmpy2.powmod_base_list([c % psq for c in cs], p - 1, psq)
    return [(x - 1) // p * hp % p for x in powered]


def powmod_pairs(nsq: int, cs: Sequence[Any], es: Sequence[int]) -> list[Any]:
    """``c_i ^ e_i mod n^2`` elementwise; negative exponents go through the inverse."""
    nsq = mpz(nsq)
    return [gmpy2.powmod(c, int(e), nsq) for c, e in zip(cs, es, strict=True)]


def _window(nnz: int, bits: int) -> int:
    """Pippenger window minimizing windows * (nonzero digits + bucket folding); 0 = naive."""
    naive = nnz * 1.3 * bits
    best_c, best = 0, naive
    for c in range(1, 17):
        cost = math.ceil(bits / c) * (nnz + (2 << c)) + bits
        if cost < best:
            best_c, best = c, cost
    return best_c


def _pippenger_nonneg(bases: Sequence[Any], e: np.ndarray, nsq: Any) -> Any:
    """``prod_j bases[j] ^ e[j] mod nsq`` for non-negative ``e`` (int64 or object array)."""
    nz = np.flatnonzero(e)
    if nz.size == 0:
        return ONE
    sub = e[nz]
    bits = int(sub.max()).bit_length()
    c = _window(int(nz.size), bits)
    idx = nz.tolist()
    if c == 0:
        acc = ONE
        for j, x in zip(idx, sub.tolist(), strict=True):
            acc = acc * gmpy2.powmod(bases[j], int(x), nsq) % nsq
        return acc
    mask = (1 << c) - 1
    result = None
    for t in reversed(range(math.ceil(bits / c))):
        if result is not None:
            result = gmpy2.powmod(result, 1 << c, nsq)
        digits = ((sub >> (c * t)) & mask).tolist()
        buckets: list[Any] = [None] * (mask + 1)
        for j, d in zip(idx, digits, strict=True):
            if d:
                b = buckets[d]
                buckets[d] = bases[j] if b is None else b * bases[j] % nsq
        running = None
        acc = None
        for d in range(mask, 0, -1):
            b = buckets[d]
            if b is not None:
                running = b if running is None else running * b % nsq
            if running is not None:
                acc = running if acc is None else acc * running % nsq
        if acc is not None:
            result = acc if result is None else result * acc % nsq
    return ONE if result is None else result


def multiexp(bases: Sequence[Any], e: np.ndarray, nsq: Any) -> Any:
    """``prod_j bases[j] ^ e[j] mod nsq`` for signed exponents (one inverse per product)."""
    nsq = mpz(nsq)
    pos = _pippenger_nonneg(bases, np.where(e > 0, e, 0), nsq)
    if not np.any(e < 0):
        return pos
    neg = _pippenger_nonneg(bases, np.where(e < 0, -e, 0), nsq)
    return pos * gmpy2.invert(neg, nsq) % nsq


def multiexp_rows(
    nsq: int, base_rows: Sequence[Sequence[Any]], exps: np.ndarray
) -> list[list[Any]]:
    """``out[b][r] = prod_j base_rows[b][j] ^ exps[r, j]``: every base row with every exponent
    row. Few bases shared by many exponent rows (``A @ [[U]]`` in split NN) use per-base
    window tables built once; otherwise Pippenger runs per exponent row."""
    rows, n = exps.shape
    if rows == 0 or n == 0:
        return [[ONE] * rows for _ in base_rows]
    bits = int(np.abs(exps).max()).bit_length()
    c, shared_cost = _table_window(n, rows, bits)
    if c and 1.5 * shared_cost < rows * _pippenger_cost(n, bits):  # 1.5: measured margin
        return [_fixed_base_rows(row, exps, mpz(nsq), c) for row in base_rows]
    return [[multiexp(row, exps[r], nsq) for r in range(rows)] for row in base_rows]


def _pippenger_cost(n: int, bits: int) -> float:
    """Multiplications of one signed Pippenger product (two bucket passes of ~n/2 each)."""
    c = _window(max(1, n // 2), bits)
    if c == 0:
        return n * 1.3 * bits
    return 2 * (math.ceil(bits / c) * (n / 2 + (2 << c)) + bits)


def _table_window(n: int, rows: int, bits: int) -> tuple[int, float]:
    """Window for shared per-base tables: n * windows * 2^c to build, n * windows per row."""
    best_c, best = 0, math.inf
    for c in range(1, 11):
        t = math.ceil(bits / c)
        cost = n * t * (1 << c) + rows * (n * t + 1)
        if cost < best:
            best_c, best = c, cost
    return best_c, best


def _fixed_base_rows(bases: Sequence[Any], exps: np.ndarray, nsq: Any, c: int) -> list[Any]:
    """``prod_j bases[j] ^ exps[r, j]`` for every row r, from tables
    ``tables[j][t][d] = bases[j] ^ (d * 2^(c t))`` shared by all rows; negative exponents are
    collected apart and folded in with one inverse per row."""
    mask = (1 << c) - 1
    mags = np.abs(exps)
    tables: list[list[list[Any]]] = []
    for j, base in enumerate(bases):
        top = int(mags[:, j].max()).bit_length()
        per_window: list[list[Any]] = []
        g = base
        for _ in range(math.ceil(top / c)):
            row = [ONE, g]
            for _d in range(2, mask + 1):
                row.append(row[-1] * g % nsq)
            per_window.append(row)
            g = row[-1] * g % nsq
        tables.append(per_window)
    out = []
    for r in range(exps.shape[0]):
        acc = [ONE, ONE]  # positive, negative exponents
        for j in np.flatnonzero(exps[r]).tolist():
            x = int(exps[r, j])
            side, x = (1, -x) if x < 0 else (0, x)
            a = acc[side]
            for row in tables[j]:
                d = x & mask
                if d:
                    a = a * row[d] % nsq
                x >>= c
            acc[side] = a
        out.append(acc[0] if acc[1] == ONE else acc[0] * gmpy2.invert(acc[1], nsq) % nsq)
    return out


def workers(executor: Executor | None) -> int:
    """How many chunks to cut work into for ``executor`` (1 without one)."""
    if executor is None:
        return 1
    return max(1, int(getattr(executor, "_max_workers", 0) or os.cpu_count() or 1))


def share(executor: Executor | None, value: Any) -> Any:
    """`value` as an argument of many tasks on `executor`: an executor that can send it to
    every worker once (a Dask cluster's ``share``) returns a handle that stands for it;
    others (the local pool) take the value itself with every task."""
    send_once = getattr(executor, "share", None)
    return value if send_once is None else send_once(value)


def split(items: Sequence[Any], parts: int, min_size: int = 64) -> list[Sequence[Any]]:
    """Contiguous chunks, at most ``parts`` of them, none (much) smaller than ``min_size``."""
    parts = max(1, min(parts, len(items) // max(1, min_size)))
    step = math.ceil(len(items) / parts) if items else 1
    return [items[i : i + step] for i in range(0, len(items), step)] or [items]


def run(
    executor: Executor | None, fn: Callable[..., Any], calls: list[tuple[Any, ...]]
) -> list[Any]:
    """Run ``fn(*args)`` for each args tuple: on ``executor`` when given and worth it, else here."""
    if executor is None or len(calls) <= 1:
        return [fn(*args) for args in calls]
    futures = [executor.submit(fn, *args) for args in calls]
    return [f.result() for f in futures]

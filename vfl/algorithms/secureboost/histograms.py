"""Per-node histograms of gradients and hessians over one party's feature bins, and the
candidate splits read off them.

A party's candidate splits are fixed for the whole training: for feature ``f`` and each edge
``b`` of its bins, "bins ``<= b`` go left", once with missing values going right and, when the
feature had missing values in training, once with them going left. The left sums
``(G_L, H_L)`` of every candidate come from prefix sums of the node's histogram; the right
sums are the node's totals minus them, which only the guest knows.

The guest sums its own plaintext g and h (`plain_histogram`); a host sums the guest's
encrypted (g, h) pairs with ciphertext multiplications only (`encrypted_histogram`, spread
over the party's process pool by rows), derives a sibling as ``parent - smaller child``
(`subtract`) and turns a histogram into the encrypted left sums of its candidates
(`encrypted_candidates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from vfl.algorithms.secureboost.binning import Bins
from vfl.crypto import kernels

Histogram = list[list[Any]]
"""An encrypted histogram: per feature, one ciphertext product per bin code."""


@dataclass(frozen=True)
class Candidates:
    """Every candidate split of one party: feature, last bin going left, missing going left."""

    feature: np.ndarray
    bin: np.ndarray
    missing_left: np.ndarray

    @classmethod
    def of(cls, bins: Bins, has_missing: np.ndarray) -> Candidates:
        f, b, ml = [], [], []
        for j in range(bins.n_features):
            for k in range(bins.candidates(j)):
                for left in (False, True) if has_missing[j] else (False,):
                    f.append(j)
                    b.append(k)
                    ml.append(left)
        return cls(np.asarray(f, dtype=np.int64), np.asarray(b, dtype=np.int64), np.asarray(ml, dtype=bool))

    def __len__(self) -> int:
        return len(self.feature)


def plain_histogram(codes: np.ndarray, g: np.ndarray, h: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """(features, n_codes) sums of `g` and `h` per bin code of the rows given."""
    n_features = codes.shape[1]
    flat = (codes.astype(np.int64) + np.arange(n_features) * n_codes).ravel()
    size = n_features * n_codes
    G = np.bincount(flat, np.repeat(g, n_features), minlength=size).reshape(n_features, n_codes)
    H = np.bincount(flat, np.repeat(h, n_features), minlength=size).reshape(n_features, n_codes)
    return G, H


def plain_candidates(G: np.ndarray, H: np.ndarray, cand: Candidates) -> tuple[np.ndarray, np.ndarray]:
    """Left sums (G_L, H_L) of every candidate from a plaintext histogram."""
    missing = G.shape[1] - 1
    cg, ch = np.cumsum(G[:, :missing], axis=1), np.cumsum(H[:, :missing], axis=1)
    gl = cg[cand.feature, cand.bin] + np.where(cand.missing_left, G[cand.feature, missing], 0.0)
    hl = ch[cand.feature, cand.bin] + np.where(cand.missing_left, H[cand.feature, missing], 0.0)
    return gl, hl


def bin_products(nsq: int, cs: Sequence[Any], codes: np.ndarray, n_codes: int) -> Histogram:
    """Per feature and bin code, the product mod `nsq` of the ciphertexts of its rows: the
    encrypted sum of their (g, h) pairs. Top level, so a pool can run it on a share of rows."""
    m = mpz(nsq)
    out: Histogram = []
    for j in range(codes.shape[1]):
        acc: list[Any] = [kernels.ONE] * n_codes
        for c, b in zip(cs, codes[:, j].tolist(), strict=True):
            acc[b] = acc[b] * c % m
        out.append(acc)
    return out


def encrypted_histogram(nsq: int, cs: Sequence[Any], codes: np.ndarray, n_codes: int,
                        executor: Executor | None) -> Histogram:
    """`bin_products` of the node's rows, each worker of `executor` summing a share of them."""
    chunks = kernels.split(range(len(cs)), kernels.workers(executor), min_size=256)
    bounds = [(r[0], r[-1] + 1) if len(r) else (0, 0) for r in chunks]
    calls = [(nsq, cs[a:b], codes[a:b], n_codes) for a, b in bounds]
    parts = kernels.run(executor, bin_products, calls)
    m = mpz(nsq)
    total = parts[0]
    for part in parts[1:]:
        total = [[a * b % m for a, b in zip(ra, rb, strict=True)] for ra, rb in zip(total, part, strict=True)]
    return total


def subtract(nsq: int, parent: Histogram, child: Histogram) -> Histogram:
    """The sibling's histogram, ``parent - child``, under encryption (one inverse per bin)."""
    m = mpz(nsq)
    return [[p * gmpy2.invert(c, m) % m for p, c in zip(rp, rc, strict=True)]
            for rp, rc in zip(parent, child, strict=True)]


def encrypted_candidates(nsq: int, hist: Histogram, cand: Candidates) -> list[Any]:
    """Encrypted left sums of every candidate (prefix products of each feature's bins)."""
    m = mpz(nsq)
    prefix = []
    for row in hist:
        acc, run = [], kernels.ONE
        for c in row[:-1]:
            run = run * c % m
            acc.append(run)
        prefix.append(acc)
    return [prefix[f][b] * hist[f][-1] % m if ml else prefix[f][b]
            for f, b, ml in zip(cand.feature.tolist(), cand.bin.tolist(), cand.missing_left.tolist(), strict=True)]

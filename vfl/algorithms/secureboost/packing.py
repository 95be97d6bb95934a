"""Gradient and hessian in one Paillier plaintext per row, and several bins per ciphertext.

Per row the guest encrypts one integer ``P = g * 2^S + h`` where ``g`` and ``h`` are the
row's gradient and hessian in fixed point (``frac_bits`` fractional bits) and ``S`` is the
slot width. Sums of such integers are slot-wise sums, so a host's ciphertext sum over the rows
of a bin decrypts to ``(sum g, sum h)`` of that bin, as long as no slot outgrows its width:
`GHLayout.for_rows` sizes ``S`` from the number of rows and the largest row weight. Signed
slots (two's complement, each digit in ``[-2^(S-1), 2^(S-1))``) need no offset, so the guest
learns no per-bin row counts.

A host then packs ``per_ciphertext`` such (g, h) sums into one ciphertext by Horner's rule,
``c_0 * (c_1 * (c_2 ...)^(2^2S))^(2^2S)``: one squaring per bit of slot, so the guest decrypts
``per_ciphertext`` times fewer ciphertexts (decryption is the costly operation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from vfl.errors import ProtocolError

FRAC_BITS = 40
"""Fractional bits of g and h: rounding error 2^-41 per row."""


@dataclass(frozen=True)
class GHLayout:
    """How (g, h) pairs are laid out in Paillier plaintexts.

    Parameters
    ----------
    frac_bits : int
        Fractional bits of the fixed-point g and h.
    slot_bits : int
        Bits of each of the two slots of a pair; every sum of g or h over at most all the
        rows fits in ``[-2^(slot_bits-1), 2^(slot_bits-1))``.
    pack_bins : bool
        Several pairs per histogram ciphertext (False: one, the unpacked protocol).
    """

    frac_bits: int
    slot_bits: int
    pack_bins: bool = True

    @classmethod
    def for_rows(cls, n_rows: int, max_weight: float, frac_bits: int = FRAC_BITS,
                 pack_bins: bool = True) -> GHLayout:
        """Slots wide enough for sums over `n_rows` rows of |g| <= `max_weight` (h <= g/4)."""
        top = math.ceil(math.log2(n_rows * max(max_weight, 1e-300) + 1))
        return cls(frac_bits, frac_bits + max(top, 1) + 2, pack_bins)

    @property
    def pair_bits(self) -> int:
        return 2 * self.slot_bits

    def per_ciphertext(self, key_bits: int) -> int:
        """Pairs packed into one ciphertext of a `key_bits` key (the whole stays below n/2)."""
        per = (key_bits - 2) // self.pair_bits
        if per < 1:
            raise ProtocolError(f"a {key_bits}-bit key cannot hold a {self.pair_bits}-bit (g, h) pair")
        return per if self.pack_bins else 1

    def pair_bound(self) -> int:
        """Bound on the absolute value of one packed pair."""
        return 1 << (self.pair_bits - 1)

    def packed_bound(self, pairs: int) -> int:
        """Bound on the absolute value of `pairs` pairs packed into one plaintext."""
        return 1 << (self.pair_bits * pairs - 1)

    def quantize(self, v: np.ndarray) -> np.ndarray:
        """`v` rounded to the fixed-point grid (what every party's sums are made of)."""
        return np.ldexp(np.rint(np.ldexp(v, self.frac_bits)), -self.frac_bits)

    def encode_rows(self, g: np.ndarray, h: np.ndarray) -> np.ndarray:
        """One signed Python int per row: ``g * 2^S + h`` in fixed point (object array)."""
        gi = np.rint(np.ldexp(g, self.frac_bits)).astype(np.int64)
        hi = np.rint(np.ldexp(h, self.frac_bits)).astype(np.int64)
        out = np.empty(len(gi), dtype=object)
        s = self.slot_bits
        out[:] = [(a << s) + b for a, b in zip(gi.tolist(), hi.tolist(), strict=True)]
        return out

    def unpack(self, packed: Sequence[int], count: int, per: int) -> tuple[np.ndarray, np.ndarray]:
        """Decrypted signed plaintexts -> (G, H) of the first `count` pairs they hold.

        Raises
        ------
        ProtocolError
            When a plaintext has bits beyond its pairs (tampered with, or overflowed).
        """
        if len(packed) != -(-count // per):
            raise ProtocolError(f"{len(packed)} packed values for {count} pairs of {per} per ciphertext")
        s, full, half = self.slot_bits, 1 << self.slot_bits, 1 << (self.slot_bits - 1)
        values: list[int] = []
        for i, p in enumerate(packed):
            rest = int(p)
            for _ in range(min(per, count - i * per) * 2):
                digit = rest & (full - 1)
                if digit >= half:
                    digit -= full
                values.append(digit)
                rest = (rest - digit) >> s
            if rest != 0:
                raise ProtocolError("a packed histogram value has bits beyond its slots (tampered or overflowed)")
        pairs = np.asarray(values, dtype=np.float64).reshape(count, 2)  # correctly rounded
        return np.ldexp(pairs[:, 1], -self.frac_bits), np.ldexp(pairs[:, 0], -self.frac_bits)


def horner_pack(nsq: int, shift_bits: int, groups: list[list[Any]]) -> list[Any]:
    """``sum_j c_j * 2^(shift_bits * j)`` under encryption for each group ``[c_0, c_1, ...]``
    (one squaring per shifted bit, no decryption). Top level, so a pool can run it."""
    m = mpz(nsq)
    shift = mpz(1) << shift_bits
    out = []
    for group in groups:
        acc = mpz(group[-1])
        for c in reversed(group[:-1]):
            acc = gmpy2.powmod(acc, shift, m) * c % m
        out.append(acc)
    return out

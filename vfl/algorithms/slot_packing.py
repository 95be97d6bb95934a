"""Several fixed-point numbers in one Paillier plaintext, so one decryption yields a whole row.

A row ``(x_0, ..., x_{s-1})`` of signed integers with ``|x_l| < 2^(slot_bits - 1)`` travels as
``P = sum_l x_l * 2^(slot_bits * l)``. Because packing is linear, ``sum_j a_j * P_j`` (a
ciphertext-plaintext product) packs ``sum_j a_j * x_{j,l}`` slot by slot, as long as no slot
outgrows its width: `SlotLayout.for_product` sizes the slots from the largest plaintext any
party may feed in (`MAX_ABS`, checked by `to_fixed`) and the length of the inner product.

Decryption is the costly Paillier operation (two 1024-bit-exponent powmods per value at 2048
bits); with 8 slots per ciphertext the split NN interactive layer decrypts 8x fewer values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vfl.errors import ProtocolError

MAX_ABS_BITS = 16
MAX_ABS = float(2**MAX_ABS_BITS)
"""Largest magnitude of any real value entering the interactive layer (activations, shares,
gradients). Far above what a sane network produces; exceeding it means training diverged."""


def to_fixed(x: np.ndarray, frac_bits: int, what: str) -> np.ndarray:
    """``round(x * 2^frac_bits)`` as exact Python ints (object array); checks ``|x| < MAX_ABS``."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ProtocolError(f"{what} has NaN or infinite values (training diverged?)")
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak >= MAX_ABS:
        raise ProtocolError(
            f"{what} reaches |{peak:.3g}| >= 2^{MAX_ABS_BITS}: the interactive layer diverged "
            "(lower interactive_lr or the optimizer's learning rate)"
        )
    scaled = np.rint(np.ldexp(x, frac_bits))
    out = np.empty(x.shape, dtype=object)
    out.reshape(-1)[:] = [int(v) for v in scaled.flat]
    return out


def fixed_exponents(x: np.ndarray, frac_bits: int, what: str) -> np.ndarray:
    """Like `to_fixed` but int64 (fast exponents for the engine): MAX_ABS_BITS + frac_bits < 63."""
    return to_fixed(x, frac_bits, what).astype(np.int64)


@dataclass(frozen=True)
class SlotLayout:
    """How `width` signed values per row are laid out in ciphertexts of a `key_bits` key."""

    width: int
    slot_bits: int
    per_ciphertext: int

    @classmethod
    def for_product(
        cls, width: int, inner: int, frac_packed: int, frac_multiplier: int, key_bits: int
    ) -> SlotLayout:
        """Slots for `plain (m x inner) @ packed (inner x width)` plus one addend of the same
        size: both factors MAX_ABS-bounded, at `frac_multiplier` and `frac_packed` bits.

        The engine bounds a product by (largest packed integer) x (largest row sum of the
        multiplier), so the top slot leaves that much headroom below n/2.
        """
        log_inner = math.ceil(math.log2(inner + 1))
        slot_bits = log_inner + 2 * MAX_ABS_BITS + frac_packed + frac_multiplier + 2
        headroom = log_inner + MAX_ABS_BITS + frac_multiplier + 2
        per = (key_bits - 2 - headroom) // slot_bits
        if per < 1:
            raise ProtocolError(f"a {key_bits}-bit key cannot hold a {slot_bits}-bit slot")
        return cls(width, slot_bits, per)

    @property
    def groups(self) -> int:
        """Ciphertexts per row."""
        return -(-self.width // self.per_ciphertext)

    def pack(self, ints: np.ndarray) -> np.ndarray:
        """(m, width) Python ints -> (m, groups) packed Python ints."""
        m = ints.shape[0]
        out = np.empty((m, self.groups), dtype=object)
        for g in range(self.groups):
            cols = range(g * self.per_ciphertext, min(self.width, (g + 1) * self.per_ciphertext))
            for i in range(m):
                out[i, g] = sum(int(ints[i, c]) << (self.slot_bits * s) for s, c in enumerate(cols))
        return out

    def unpack(self, packed: np.ndarray, frac_bits: int) -> np.ndarray:
        """(m, groups) packed signed ints -> (m, width) float64 values at `frac_bits` scale."""
        m = packed.shape[0]
        if packed.shape != (m, self.groups):
            raise ProtocolError(f"packed array of shape {packed.shape}, expected (m, {self.groups})")
        full, half = 1 << self.slot_bits, 1 << (self.slot_bits - 1)
        out = np.empty((m, self.width), dtype=np.float64)
        for g in range(self.groups):
            cols = range(g * self.per_ciphertext, min(self.width, (g + 1) * self.per_ciphertext))
            for i in range(m):
                rest = int(packed[i, g])
                for c in cols:
                    digit = rest & (full - 1)
                    if digit >= half:
                        digit -= full
                    out[i, c] = math.ldexp(float(digit), -frac_bits)
                    rest = (rest - digit) >> self.slot_bits
                if rest != 0:
                    raise ProtocolError("packed value has bits beyond its slots (tampered or overflowed)")
        return out

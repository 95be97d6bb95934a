"""Fixed-point encoding of real numbers as Paillier plaintext integers.

A real value ``v`` is carried as the integer ``m = round(v * 2**scale_bits)``; one scale is
shared by a whole array (no per-element exponents, so additions never rescale element by
element). Negative integers live in Z_n as ``n - |m|``: an integer decodes as negative when it
is above ``(n - 1) / 2``. Every encrypted object tracks a bound on ``|m|``; an operation whose
bound would reach ``n / 2`` raises :class:`CryptoOverflowError` instead of wrapping silently.

Defaults: ciphertexts of floats use ``DEFAULT_SCALE_BITS = 40`` (absolute precision ~1e-12);
plaintext float multipliers use ``DEFAULT_MUL_SCALE_BITS = 32`` (~2e-10), so a product has
scale 72. Integer and bool arrays are encoded exactly with scale 0 unless asked otherwise.

Ciphertexts travel as an :class:`IntBlock`: fixed-width big-endian integers, which the wire
codec (``vfl.net.codec``) carries as one opaque block.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vfl.errors import CodecError, DataError, ProtocolError

DEFAULT_SCALE_BITS = 40
DEFAULT_MUL_SCALE_BITS = 32
MAX_SCALE_BITS = 4096
_INT64_SAFE = 1 << 62


class CryptoOverflowError(ProtocolError, OverflowError):
    """A plaintext would leave the range (-n/2, n/2) that the key can represent."""


def is_integer_input(x: np.ndarray) -> bool:
    """True for int/bool arrays and arrays of Python ints, which encode exactly."""
    if x.dtype.kind in "iub":
        return True
    if x.dtype == object:
        return all(isinstance(v, int) for v in x.flat)
    return False


def encode(x: object, scale_bits: int | None, default_scale: int) -> tuple[np.ndarray, int, int]:
    """Encode ``x`` at ``scale_bits`` (None: 0 for integers, else ``default_scale``).

    Returns ``(ints, scale_bits, bound)``: ``ints`` is an int64 array when every value fits,
    else an object array of Python ints; ``bound`` is ``max |ints|`` (0 for an empty array).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iubf" and not (arr.dtype == object and is_integer_input(arr)):
        raise DataError(f"cannot encode values of dtype {arr.dtype}; expected numbers")
    integer = is_integer_input(arr)
    scale = (0 if integer else default_scale) if scale_bits is None else int(scale_bits)
    if not 0 <= scale <= MAX_SCALE_BITS:
        raise DataError(f"scale_bits must be in [0, {MAX_SCALE_BITS}], got {scale}")
    if integer:
        if arr.dtype.kind in "iub":
            wide = arr.astype(np.int64)
            peak = int(np.abs(wide).max()) if wide.size else 0
            if peak < (_INT64_SAFE >> scale):
                return wide << scale, scale, peak << scale
        ints = np.empty(arr.shape, dtype=object)
        ints.flat[:] = [int(v) << scale for v in arr.flat]
        return _compact(ints, scale)
    values = arr.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise DataError("cannot encode NaN or infinite values")
    with np.errstate(over="ignore"):
        scaled = np.rint(np.ldexp(values, scale))
    if not np.all(np.isfinite(scaled)):
        raise CryptoOverflowError(f"values too large to encode with scale_bits={scale}")
    peak_f = float(np.abs(scaled).max()) if scaled.size else 0.0
    if peak_f < _INT64_SAFE:
        return scaled.astype(np.int64), scale, int(peak_f)
    ints = np.empty(scaled.shape, dtype=object)
    ints.flat[:] = [int(v) for v in scaled.flat]
    return _compact(ints, scale)


def _compact(ints: np.ndarray, scale: int = 0) -> tuple[np.ndarray, int, int]:
    """Object array of Python ints -> int64 when it fits; returns (ints, scale, bound)."""
    bound = max((abs(v) for v in ints.flat), default=0)
    if bound < _INT64_SAFE:
        return ints.astype(np.int64), scale, bound
    return ints, scale, bound


def decode(ints: np.ndarray, scale_bits: int) -> np.ndarray:
    """Signed integers at ``scale_bits`` -> float64 (correctly rounded, any size)."""
    denom = 1 << scale_bits
    out = np.empty(ints.shape, dtype=np.float64)
    try:
        out.flat[:] = [int(v) / denom for v in ints.flat]
    except OverflowError as exc:
        raise CryptoOverflowError("decrypted value does not fit in a float64") from exc
    return out


def to_signed(residue: int, n: int) -> int:
    """The representative of ``residue`` mod ``n`` in ``(-n/2, n/2)``."""
    return residue - n if residue > (n - 1) // 2 else residue


# -- ciphertexts on the wire ---------------------------------------------------------------


@dataclass(frozen=True)
class IntBlock:
    """A vector of non-negative big integers as fixed-width big-endian bytes (ciphertexts)."""

    width: int
    data: bytes

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise CodecError(f"IntBlock width must be positive, got {self.width}")
        if len(self.data) % self.width:
            raise CodecError(
                f"IntBlock of width {self.width} has {len(self.data)} bytes, not a multiple"
            )

    def __len__(self) -> int:
        return len(self.data) // self.width

    @classmethod
    def from_ints(cls, values: Iterable[int], width: int) -> IntBlock:
        try:
            data = b"".join(int(v).to_bytes(width, "big") for v in values)
        except OverflowError as exc:
            raise CodecError(f"an integer does not fit in {width} bytes (or is negative)") from exc
        return cls(width, data)

    def to_ints(self) -> list[int]:
        w, data = self.width, self.data
        return [int.from_bytes(data[i : i + w], "big") for i in range(0, len(data), w)]

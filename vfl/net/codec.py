"""The wire codec: every value that crosses a party boundary goes through here, never pickle.

A message is ``MAGIC`` followed by one value. A value is a one-byte type tag and its payload:

    N               None
    T / F           True / False
    i  u32 n, n B   int, signed big-endian (arbitrary size, bounded by MAX_INT_BYTES)
    f  8 B          float64
    s  u64 n, n B   str (UTF-8)
    b  u64 n, n B   bytes
    a  dtype, ndim, dims, data   numpy array of a plain numeric dtype (no objects)
    B  u32 width, u64 count, data   IntBlock: fixed-width unsigned big-endian integers
    l  u64 n, values             list (tuples are sent as lists)
    d  u64 n, (str key, value)*  dict with str keys

Decoding checks every length against the bytes that remain and the message limit, so a
truncated or hostile buffer raises `CodecError` instead of allocating or guessing.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from vfl.crypto.encoding import IntBlock
from vfl.errors import CodecError

MAGIC = b"VFL\x01"
DEFAULT_MAX_BYTES = 1 << 31  # 2 GiB: large ciphertext blocks fit, runaway sizes do not
MAX_DEPTH = 32
MAX_INT_BYTES = 1 << 16  # 512 kbit integers are far beyond any key size we use

# Plain numeric dtypes only: an object or structured dtype could smuggle arbitrary data.
ALLOWED_DTYPES = frozenset(
    np.dtype(t).str
    for t in (
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64",
    )
)

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")




def encode(value: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Serialize `value`; raises CodecError for unsupported types or an oversized result."""
    parts: list[bytes] = [MAGIC]
    _encode(value, parts, 0)
    size = sum(len(p) for p in parts)
    if size > max_bytes:
        raise CodecError(f"message of {size} bytes exceeds the limit of {max_bytes} bytes")
    return b"".join(parts)


def decode(buf: bytes | bytearray | memoryview, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse a message made by `encode`; rejects anything else with a CodecError."""
    view = memoryview(buf)
    if len(view) > max_bytes:
        raise CodecError(f"message of {len(view)} bytes exceeds the limit of {max_bytes} bytes")
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise CodecError("not a vfl message (bad magic bytes; pickled or foreign data?)")
    reader = _Reader(view, len(MAGIC))
    value = reader.value(0)
    if reader.pos != len(view):
        raise CodecError(f"{len(view) - reader.pos} trailing bytes after the message")
    return value


def _encode(value: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CodecError(f"value nested deeper than {MAX_DEPTH} levels")
    if value is None:
        out.append(b"N")
    elif value is True or value is False or isinstance(value, np.bool_):
        out.append(b"T" if value else b"F")
    elif isinstance(value, int | np.integer):
        v = int(value)
        raw = v.to_bytes((v.bit_length() + 8) // 8 or 1, "big", signed=True)
        if len(raw) > MAX_INT_BYTES:
            raise CodecError(f"integer of {len(raw)} bytes exceeds {MAX_INT_BYTES} bytes")
        out += [b"i", _U32.pack(len(raw)), raw]
    elif isinstance(value, float | np.floating):
        out += [b"f", _F64.pack(float(value))]
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += [b"s", _U64.pack(len(raw)), raw]
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out += [b"b", _U64.pack(len(raw)), raw]
    elif isinstance(value, np.ndarray):
        _encode_array(value, out)
    elif isinstance(value, IntBlock):
        out += [b"B", _U32.pack(value.width), _U64.pack(len(value)), value.data]
    elif isinstance(value, list | tuple):
        out += [b"l", _U64.pack(len(value))]
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out += [b"d", _U64.pack(len(value))]
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(f"dict keys must be str, got {type(key).__name__}")
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    else:
        raise CodecError(f"type {type(value).__name__} cannot be sent between parties")


def _encode_array(arr: np.ndarray, out: list[bytes]) -> None:
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    if dtype.str not in ALLOWED_DTYPES:
        raise CodecError(f"arrays of dtype {arr.dtype} cannot be sent (plain numeric only)")
    data = np.ascontiguousarray(arr, dtype=dtype)
    name = data.dtype.str.encode("ascii")
    out += [b"a", bytes([len(name)]), name, bytes([data.ndim])]
    out += [_U64.pack(d) for d in data.shape]
    raw = data.tobytes()
    out += [_U64.pack(len(raw)), raw]


class _Reader:
    def __init__(self, view: memoryview, pos: int) -> None:
        self.view = view
        self.pos = pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.view):
            raise CodecError(
                f"truncated message: needed {n} bytes at offset {self.pos}, "
                f"only {len(self.view) - self.pos} remain"
            )
        chunk = self.view[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def count(self, min_item_bytes: int) -> int:
        n = self.u64()
        if n * min_item_bytes > len(self.view) - self.pos:
            raise CodecError(f"truncated message: {n} items cannot fit in the remaining bytes")
        return n

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CodecError(f"value nested deeper than {MAX_DEPTH} levels")
        tag = bytes(self.take(1))
        if tag == b"N":
            return None
        if tag == b"T":
            return True
        if tag == b"F":
            return False
        if tag == b"i":
            n = self.u32()
            if n > MAX_INT_BYTES:
                raise CodecError(f"integer of {n} bytes exceeds {MAX_INT_BYTES} bytes")
            return int.from_bytes(self.take(n), "big", signed=True)
        if tag == b"f":
            return float(_F64.unpack(self.take(8))[0])
        if tag == b"s":
            try:
                return str(self.take(self.u64()), "utf-8")
            except UnicodeDecodeError as exc:
                raise CodecError("string is not valid UTF-8") from exc
        if tag == b"b":
            return bytes(self.take(self.u64()))
        if tag == b"a":
            return self.array()
        if tag == b"B":
            width = self.u32()
            if width == 0:
                raise CodecError("IntBlock width must be positive")
            n = self.count(width)
            return IntBlock(width, bytes(self.take(n * width)))
        if tag == b"l":
            return [self.value(depth + 1) for _ in range(self.count(1))]
        if tag == b"d":
            result: dict[str, Any] = {}
            for _ in range(self.count(2)):
                key = self.value(depth + 1)
                if not isinstance(key, str):
                    raise CodecError(f"dict key must be str, got {type(key).__name__}")
                result[key] = self.value(depth + 1)
            return result
        raise CodecError(f"unknown type tag {tag!r} at offset {self.pos - 1}")

    def array(self) -> np.ndarray:
        name = bytes(self.take(self.take(1)[0])).decode("ascii", "replace")
        if name not in ALLOWED_DTYPES:
            raise CodecError(f"array dtype {name!r} is not allowed (plain numeric only)")
        dtype = np.dtype(name)
        ndim = self.take(1)[0]
        if ndim > MAX_DEPTH:
            raise CodecError(f"array with {ndim} dimensions is not allowed")
        shape = tuple(self.u64() for _ in range(ndim))
        nbytes = self.u64()
        expected = math.prod(shape) * dtype.itemsize
        if nbytes != expected:
            raise CodecError(
                f"array of shape {shape} and dtype {name} needs {expected} bytes, "
                f"message declares {nbytes}"
            )
        return np.frombuffer(self.take(nbytes), dtype=dtype).reshape(shape).copy()

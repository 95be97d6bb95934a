import pickle
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vfl.errors import CodecError
from vfl.net.codec import MAGIC, IntBlock, decode, encode

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_round_trip_of_nested_plain_values(value):
    assert decode(encode(value)) == value


@pytest.mark.parametrize(
    "dtype", ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64"],
)
def test_arrays_keep_dtype_shape_and_bits(dtype):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 2)) * 100).astype(dtype)
    out = decode(encode(arr))
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert out.tobytes() == arr.tobytes()


def test_big_endian_and_non_contiguous_arrays_round_trip():
    arr = np.arange(12, dtype=">i4").reshape(3, 4).T
    out = decode(encode(arr))
    np.testing.assert_array_equal(out, arr)


def test_nan_and_inf_floats_survive():
    out = decode(encode([float("inf"), np.array([np.nan, -np.inf])]))
    assert out[0] == float("inf") and np.isnan(out[1][0]) and out[1][1] == -np.inf


def test_big_integers_and_int_blocks():
    big = [0, 1, 2**2047 + 12345, 2**4095]
    out = decode(encode({"n": -(2**3000), "block": IntBlock.from_ints(big, 512)}))
    assert out["n"] == -(2**3000)
    assert out["block"].to_ints() == big


def test_tuples_become_lists_and_numpy_scalars_become_python():
    assert decode(encode((1, np.int64(2), np.float32(0.5), np.bool_(True)))) == [1, 2, 0.5, True]


def test_pickle_payload_is_rejected():
    with pytest.raises(CodecError, match="bad magic"):
        decode(pickle.dumps({"a": 1}))


@pytest.mark.parametrize("cut", [1, 5, 10, 20])
def test_truncated_buffers_are_rejected(cut):
    buf = encode({"x": np.arange(10.0), "s": "hello"})
    with pytest.raises(CodecError, match="truncated"):
        decode(buf[: len(buf) - cut])


def test_trailing_bytes_are_rejected():
    with pytest.raises(CodecError, match="trailing"):
        decode(encode(1) + b"\x00")


def test_object_arrays_are_refused_on_both_sides():
    with pytest.raises(CodecError, match="dtype object"):
        encode(np.array([{"a": 1}], dtype=object))
    forged = MAGIC + b"a" + bytes([3]) + b"|O8" + bytes([1]) + struct.pack(">Q", 1) + struct.pack(">Q", 8) + b"\0" * 8
    with pytest.raises(CodecError, match="not allowed"):
        decode(forged)


def test_array_length_must_match_shape_and_dtype():
    buf = bytearray(encode(np.zeros(4, dtype=np.float64)))
    # shape says 4 float64 = 32 bytes; declare 5 elements instead
    start = buf.index(struct.pack(">Q", 4))
    buf[start : start + 8] = struct.pack(">Q", 5)
    with pytest.raises(CodecError, match="needs 40 bytes"):
        decode(bytes(buf))


def test_unknown_types_are_refused():
    with pytest.raises(CodecError, match="cannot be sent"):
        encode({"f": lambda: 1})
    with pytest.raises(CodecError, match="keys must be str"):
        encode({1: 2})
    with pytest.raises(CodecError, match="unknown type tag"):
        decode(MAGIC + b"Z")


def test_oversized_messages_are_refused():
    with pytest.raises(CodecError, match="exceeds the limit"):
        encode(np.zeros(1000), max_bytes=1000)
    with pytest.raises(CodecError, match="exceeds the limit"):
        decode(encode(np.zeros(1000)), max_bytes=1000)


def test_huge_declared_counts_do_not_allocate():
    forged = MAGIC + b"l" + struct.pack(">Q", 2**60)
    with pytest.raises(CodecError, match="truncated"):
        decode(forged)


def test_deep_nesting_is_refused():
    value: list = []
    for _ in range(40):
        value = [value]
    with pytest.raises(CodecError, match="deeper"):
        encode(value)


def test_int_block_validates_width():
    with pytest.raises(CodecError, match="not a multiple"):
        IntBlock(4, b"\0" * 6)
    with pytest.raises(CodecError, match="does not fit"):
        IntBlock.from_ints([2**40], 4)

"""Fixed-point encoding: exact integers, rounded floats, refused NaN/inf and oversized values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vfl.crypto.encoding import CryptoOverflowError, decode, encode, to_signed
from vfl.errors import DataError


@given(st.lists(st.integers(-(2**200), 2**200), max_size=5), st.integers(0, 64))
def test_integers_encode_exactly(values, scale):
    ints, s, bound = encode(np.array(values, dtype=object), scale, 40)
    assert s == scale
    assert [int(v) for v in ints] == [v << scale for v in values]
    assert bound == max((abs(v) << scale for v in values), default=0)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_float_roundtrip_error_at_most_half_a_unit(x):
    ints, s, _ = encode(np.array([x]), None, 40)
    assert s == 40 and abs(decode(ints, s)[0] - x) <= 2.0**-41 + abs(x) * 2.0**-52


def test_defaults_and_refusals():
    assert encode(np.array([True, False]), None, 40)[1] == 0
    assert encode(np.array([1.5]), None, 32)[1] == 32
    with pytest.raises(DataError, match="NaN"):
        encode(np.array([1.0, np.nan]), None, 40)
    with pytest.raises(DataError, match="NaN or infinite"):
        encode(np.array([np.inf]), None, 40)
    with pytest.raises(CryptoOverflowError):
        encode(np.array([1e300]), 200, 40)
    with pytest.raises(DataError, match="dtype"):
        encode(np.array(["a"]), None, 40)
    with pytest.raises(DataError, match="scale_bits"):
        encode(np.array([1.0]), -1, 40)


def test_signed_representatives():
    n = 101
    assert [to_signed(r, n) for r in (0, 1, 50, 51, 100)] == [0, 1, 50, -50, -1]

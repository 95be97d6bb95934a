"""Property tests: every EncryptedArray operation against exact plaintext arithmetic.

Integer inputs are encoded at scale 0, so these comparisons are exact (Python ints, no
tolerance); floats are checked against the documented fixed-point precision.
"""

from __future__ import annotations

import numpy as np
import phe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vfl.crypto import CryptoOverflowError, EncryptedArray

SETTINGS = settings(max_examples=25, deadline=None)
small_ints = st.integers(min_value=-(2**40), max_value=2**40)
floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64)


def int_arrays(shape):
    return hnp.arrays(np.int64, shape, elements=small_ints)


def exact(priv, enc) -> np.ndarray:
    """Decrypted integers (scale 0) as an object array of Python ints."""
    out = priv.decrypt_encoded(enc)
    assert out.scale_bits == enc.scale_bits
    return out.ints


def as_obj(a) -> np.ndarray:
    return np.asarray(a).astype(object)


@SETTINGS
@given(x=hnp.arrays(np.float64, st.integers(0, 6), elements=floats))
def test_float_roundtrip_within_precision(paillier_keys, x):
    pub, priv = paillier_keys
    enc = pub.encrypt(x)
    assert enc.scale_bits == 40
    np.testing.assert_allclose(priv.decrypt(enc), x, rtol=0, atol=2.0**-40)


@SETTINGS
@given(data=st.data())
def test_extreme_integers_near_the_bound(paillier_keys, data):
    pub, priv = paillier_keys
    limit = int(pub.max_int)
    big = st.one_of(
        st.integers(limit - 2**64, limit),
        st.integers(-limit, -limit + 2**64),
        st.sampled_from([0, 1, -1, limit, -limit]),
    )
    vals = data.draw(st.lists(big, max_size=3)) + [data.draw(st.integers(limit // 2 + 1, limit))]
    enc = pub.encrypt(np.array(vals, dtype=object))
    assert list(exact(priv, enc)) == vals
    assert list(exact(priv, -enc)) == [-v for v in vals]
    with pytest.raises(CryptoOverflowError):
        enc + enc  # bound doubles past n/2: an error, never a wrap
    with pytest.raises(CryptoOverflowError):
        pub.encrypt(np.array([limit + 1], dtype=object))


@SETTINGS
@given(a=int_arrays((3, 2)), b=int_arrays((3, 2)), c=st.integers(-(2**40), 2**40))
def test_add_sub_neg_exact(paillier_keys, a, b, c):
    pub, priv = paillier_keys
    ea, eb = pub.encrypt(a), pub.encrypt(b)
    A, B = as_obj(a), as_obj(b)
    assert (exact(priv, ea + eb) == A + B).all()
    assert (exact(priv, ea - eb) == A - B).all()
    assert (exact(priv, ea + b) == A + B).all()
    assert (exact(priv, b + ea) == A + B).all()
    assert (exact(priv, c - ea) == c - A).all()
    assert (exact(priv, ea - c) == A - c).all()
    assert (exact(priv, -ea) == -A).all()
    assert (exact(priv, ea + b[0]) == A + B[0]).all()  # broadcasting a row


@SETTINGS
@given(a=int_arrays((4, 3)), p=int_arrays((4, 3)), s=small_ints)
def test_multiply_and_sum_exact(paillier_keys, a, p, s):
    pub, priv = paillier_keys
    ea = pub.encrypt(a)
    A, P = as_obj(a), as_obj(p)
    assert (exact(priv, ea * p) == A * P).all()
    assert (exact(priv, p * ea) == A * P).all()
    assert (exact(priv, ea * s) == A * s).all()
    assert (exact(priv, ea * p[:, :1]) == A * P[:, :1]).all()
    assert exact(priv, ea.sum())[()] == A.sum()
    assert (exact(priv, ea.sum(axis=0)) == A.sum(axis=0)).all()
    assert (exact(priv, ea.sum(axis=1)) == A.sum(axis=1)).all()


@SETTINGS
@given(
    n=st.integers(1, 300),
    m=st.integers(1, 3),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    bits=st.sampled_from([1, 8, 33, 62]),
)
def test_matrix_products_exact(paillier_keys, n, m, k, seed, bits):
    """Pippenger products over sizes that exercise every window choice, signs and zeros."""
    pub, priv = paillier_keys
    rng = np.random.default_rng(seed)
    hi = 2 ** (bits - 1)
    X = rng.integers(-hi, hi, size=(m, n), endpoint=True)
    X[rng.random((m, n)) < 0.2] = 0
    d = rng.integers(-(2**30), 2**30, size=n)
    D = rng.integers(-(2**30), 2**30, size=(n, k))
    ed, eD = pub.encrypt(d), pub.encrypt(D)
    Xo, do, Do = as_obj(X), as_obj(d), as_obj(D)
    assert (exact(priv, X @ ed) == Xo.dot(do)).all()
    assert (exact(priv, X @ eD) == Xo.dot(Do)).all()
    assert (exact(priv, eD.T @ X.T) == Do.T.dot(Xo.T)).all()
    assert (exact(priv, ed @ X.T) == do.dot(Xo.T)).all()
    assert exact(priv, ed @ X[0])[()] == do.dot(Xo[0])


@SETTINGS
@given(
    x=hnp.arrays(np.float64, (5,), elements=floats),
    w=hnp.arrays(np.float64, (5, 2), elements=st.floats(-100, 100)),
)
def test_float_products_within_precision(paillier_keys, x, w):
    pub, priv = paillier_keys
    ex = pub.encrypt(x)
    got = priv.decrypt(ex @ w)
    assert ex.scale_bits + 32 == (ex @ w).scale_bits
    # error: |x| * (w rounding 2^-33) summed + |w| * (x rounding 2^-41) summed
    tol = 5 * (1e6 * 2.0**-33 + 100 * 2.0**-41) + 1e-12
    np.testing.assert_allclose(got, x @ w, rtol=0, atol=tol)
    np.testing.assert_allclose(priv.decrypt(ex * 0.5 - 1.25), x * 0.5 - 1.25, atol=1e-9)


@SETTINGS
@given(v=int_arrays((2, 3)), stat_bits=st.sampled_from([1, 40, 80]))
def test_blind_unblind_exact(paillier_keys, v, stat_bits):
    pub, priv = paillier_keys
    masked, mask = pub.encrypt(v).blind(stat_bits=stat_bits)
    out = mask.unblind(priv.decrypt_encoded(masked))
    assert (out == v.astype(np.float64)).all()


# phe gives tiny floats exponents of ~1000 bits; aligning those to one scale overflows by
# design (CryptoOverflowError), so interop values stay in a range a fixed-point scale can hold
interop_floats = floats.filter(lambda v: v == 0 or abs(v) > 1e-6)


@SETTINGS
@given(x=hnp.arrays(np.float64, (4,), elements=interop_floats))
def test_phe_interoperates_both_ways(paillier_keys, x):
    pub, priv = paillier_keys
    from_phe = EncryptedArray.from_phe([pub.phe.encrypt(float(v)) for v in x], max_abs=1e6)
    np.testing.assert_allclose(priv.decrypt(from_phe), x, rtol=1e-12, atol=1e-9)
    to_phe = pub.encrypt(x).to_phe()
    assert all(isinstance(v, phe.EncryptedNumber) for v in to_phe)
    np.testing.assert_allclose([priv.phe.decrypt(v) for v in to_phe], x, atol=2.0**-40)
    # phe arithmetic on engine ciphertexts and back
    doubled = EncryptedArray.from_phe([v * 2 for v in to_phe], pub, max_abs=2e6)
    np.testing.assert_allclose(priv.decrypt(doubled), 2 * x, atol=2.0**-39)


def test_phe_tiny_exponents_refused_not_wrapped(paillier_keys):
    pub, _ = paillier_keys
    numbers = [pub.phe.encrypt(1e5), pub.phe.encrypt(1e-300)]
    with pytest.raises(CryptoOverflowError):
        EncryptedArray.from_phe(numbers, max_abs=1e5)


@SETTINGS
@given(data=st.data(), p=st.integers(2, 2**200) | st.integers(-(2**200), -2))
def test_products_exact_up_to_the_bound_and_refused_past_it(paillier_keys, data, p):
    """Multiply, sum and matmul results right at n/2 decrypt exactly; one step past it is a
    CryptoOverflowError, never a wrapped value."""
    pub, priv = paillier_keys
    top = int(pub.max_int) // abs(p)
    vals = data.draw(st.lists(st.integers(-top, top), min_size=1, max_size=3))
    vals[0] = data.draw(st.sampled_from([top, -top]))
    enc = pub.encrypt(np.array(vals, dtype=object))
    assert list(exact(priv, enc * p)) == [v * p for v in vals]
    X = np.array([[p] + [0] * (len(vals) - 1)], dtype=object)
    assert list(exact(priv, X @ enc)) == [vals[0] * p]
    over = pub.encrypt(np.array([top + 1, 0], dtype=object))
    with pytest.raises(CryptoOverflowError):
        over * p
    with pytest.raises(CryptoOverflowError):
        np.array([[p, 0]], dtype=object) @ over
    half = pub.encrypt(np.array([int(pub.max_int) // 2] * 2, dtype=object))
    assert exact(priv, half.sum())[()] == 2 * (int(pub.max_int) // 2)
    with pytest.raises(CryptoOverflowError):
        pub.encrypt(np.array([int(pub.max_int) // 2 + 1] * 2, dtype=object)).sum()

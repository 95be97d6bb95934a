"""EncryptedArray against plaintext numpy arithmetic (1024-bit keys to keep tests fast)."""

from __future__ import annotations

import numpy as np
import pytest

from vfl.crypto import CryptoOverflowError, EncodedArray, EncryptedArray
from vfl.errors import ConfigError, ProtocolError

ATOL = 1e-9


def test_encrypt_decrypt_shapes(paillier_keys):
    pub, priv = paillier_keys
    for x in [3.25, -7, np.array([1.5, -2.0, 0.0]), np.arange(6).reshape(2, 3) - 2.5]:
        enc = pub.encrypt(x)
        assert enc.shape == np.shape(x)
        np.testing.assert_allclose(priv.decrypt(enc), x, atol=ATOL)


def test_integers_encrypt_exactly_at_scale_zero(paillier_keys):
    pub, priv = paillier_keys
    enc = pub.encrypt(np.array([0, -1, 2**40, -(2**61)]))
    assert enc.scale_bits == 0
    assert [int(v) for v in priv.decrypt_encoded(enc).ints] == [0, -1, 2**40, -(2**61)]


def test_arithmetic_matches_numpy(paillier_keys):
    pub, priv = paillier_keys
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    ea, eb = pub.encrypt(a), pub.encrypt(b)
    np.testing.assert_allclose(priv.decrypt(ea + eb), a + b, atol=ATOL)
    np.testing.assert_allclose(priv.decrypt(ea - eb), a - b, atol=ATOL)
    np.testing.assert_allclose(priv.decrypt(b + ea), a + b, atol=ATOL)
    np.testing.assert_allclose(priv.decrypt(1.5 - ea), 1.5 - a, atol=ATOL)
    np.testing.assert_allclose(priv.decrypt(-ea), -a, atol=ATOL)
    np.testing.assert_allclose(priv.decrypt(ea * b), a * b, atol=1e-8)
    np.testing.assert_allclose(priv.decrypt(b[0] * ea), a * b[0], atol=1e-8)
    np.testing.assert_allclose(priv.decrypt(ea.sum()), a.sum(), atol=1e-8)
    np.testing.assert_allclose(priv.decrypt(ea.sum(axis=0)), a.sum(axis=0), atol=1e-8)
    np.testing.assert_allclose(priv.decrypt(ea.sum(axis=1)), a.sum(axis=1), atol=1e-8)
    np.testing.assert_allclose(priv.decrypt(ea[np.array([2, 0])]), a[[2, 0]], atol=ATOL)
    np.testing.assert_allclose(priv.decrypt(ea.T), a.T, atol=ATOL)


def test_matrix_products(paillier_keys):
    pub, priv = paillier_keys
    rng = np.random.default_rng(1)
    X, d = rng.normal(size=(40, 3)), rng.normal(size=40)
    A, W, G = rng.normal(size=(5, 4)), rng.normal(size=(4, 2)), rng.normal(size=(5, 3))
    ed, eA = pub.encrypt(d), pub.encrypt(A)
    np.testing.assert_allclose(priv.decrypt(X.T @ ed), X.T @ d, atol=1e-7)
    np.testing.assert_allclose(priv.decrypt(pub.matmul(X.T, ed)), X.T @ d, atol=1e-7)
    np.testing.assert_allclose(priv.decrypt(eA @ W), A @ W, atol=1e-7)
    np.testing.assert_allclose(priv.decrypt(pub.cipher_matmul(eA.T, G)), A.T @ G, atol=1e-7)
    np.testing.assert_allclose(priv.decrypt(ed @ X), d @ X, atol=1e-7)
    np.testing.assert_allclose(priv.decrypt(G.T @ eA), G.T @ A, atol=1e-7)


def test_blind_roundtrip_through_wire(paillier_keys):
    pub, priv = paillier_keys
    v = np.array([[-3.5, 0.0], [2.25, 1e5]])
    masked, mask = pub.encrypt(v).blind(stat_bits=40)
    encoded = EncodedArray.from_wire(priv.decrypt_encoded(masked).to_wire())
    np.testing.assert_allclose(mask.unblind(encoded), v, atol=ATOL)


def test_wire_roundtrip_and_foreign_key(paillier_keys, foreign_paillier_keys):
    pub, priv = paillier_keys
    enc = pub.encrypt(np.array([1.0, -2.0]))
    back = EncryptedArray.from_wire(enc.to_wire(), pub)
    np.testing.assert_allclose(priv.decrypt(back), [1.0, -2.0])
    with pytest.raises(ProtocolError, match="foreign key"):
        EncryptedArray.from_wire(enc.to_wire(), foreign_paillier_keys[0])


def test_overflow_is_an_error(paillier_keys):
    pub, _ = paillier_keys
    enc = pub.encrypt(np.array([2.0**600]), scale_bits=0)
    with pytest.raises(CryptoOverflowError):
        enc * np.array([2**500])


def test_small_keys_refused():
    from vfl.crypto import generate_keypair

    with pytest.raises(ConfigError):
        generate_keypair(512)

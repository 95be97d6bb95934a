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


# -- arrival validation ---------------------------------------------------------------------
def _tampered(wire: dict, index: int, value: int, pub) -> dict:
    from vfl.net.codec import IntBlock

    ints = wire["data"].to_ints()
    ints[index] = value
    return {**wire, "data": IntBlock.from_ints(ints, pub.ciphertext_bytes)}


def test_tampered_ciphertexts_rejected_on_arrival(paillier_keys):
    pub, priv = paillier_keys
    p = int(priv._p)
    wire = pub.encrypt(np.array([1.0, 2.0, 3.0])).to_wire()
    for value, match in [
        (0, "ciphertext 1 is outside"),
        (int(pub.nsquare), "ciphertext 1 is outside"),
        (p * 12345, "ciphertext 1 is not a unit"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            EncryptedArray.from_wire(_tampered(wire, 1, value, pub), pub)
    bad_fields = [
        ({"shape": [4]}, "'data' must be"),
        ({"shape": [1, 2, 3]}, "'shape'"),
        ({"scale_bits": -1}, "'scale_bits'"),
        ({"bound": format(int(pub.n), "x")}, "bound exceeds"),
        ({"bound": "zz"}, "not hexadecimal"),
        ({"data": b"\x00" * 10}, "IntBlock"),
        ({"kind": "other"}, "kind"),
    ]
    for change, match in bad_fields:
        with pytest.raises(ProtocolError, match=match):
            EncryptedArray.from_wire({**wire, **change}, pub)


def test_in_range_tampering_caught_by_bound_at_decryption(paillier_keys):
    """A flipped bit inside (0, n^2) is a valid-looking ciphertext of a random plaintext;
    the tracked bound catches it when the key owner decrypts."""
    pub, priv = paillier_keys
    wire = pub.encrypt(np.array([1.0, 2.0])).to_wire()
    c = wire["data"].to_ints()[0]
    arrived = EncryptedArray.from_wire(_tampered(wire, 0, c ^ (1 << 100), pub), pub)
    with pytest.raises(ProtocolError, match="exceeds the bound"):
        priv.decrypt(arrived)


def test_foreign_key_rejected(paillier_keys, foreign_paillier_keys):
    pub, priv = paillier_keys
    other_pub, other_priv = foreign_paillier_keys
    enc = pub.encrypt(np.array([1.0]))
    with pytest.raises(ProtocolError, match="foreign key"):
        EncryptedArray.from_wire(enc.to_wire(), other_pub)
    with pytest.raises(ProtocolError, match="not this private key"):
        other_priv.decrypt(enc)
    with pytest.raises(ProtocolError, match="different keys"):
        enc + other_pub.encrypt(np.array([1.0]))


def test_public_key_wire_validation(paillier_keys):
    from vfl.crypto import PaillierPublicKey

    pub, _ = paillier_keys
    assert PaillierPublicKey.from_wire(pub.to_wire()) == pub
    for change, match in [
        ({"n": format(int(pub.n) + 1, "x")}, "not a valid RSA modulus"),
        ({"n": format(2**1023 + 1, "x")[:100]}, "bits"),
        ({"n": format(3 * (2**1100 // 3 | 1), "x")}, "not a valid RSA modulus|fingerprint"),
        ({"fingerprint": "00" * 32}, "fingerprint"),
        ({"n": 12}, "hex string"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            PaillierPublicKey.from_wire({**pub.to_wire(), **change})


def test_encoded_array_wire_validation():
    good = EncodedArray(np.array([-(2**70), 5], dtype=object), 40).to_wire()
    assert list(EncodedArray.from_wire(good).ints) == [-(2**70), 5]
    with pytest.raises(ProtocolError, match="'data' must be"):
        EncodedArray.from_wire({**good, "shape": [3]})
    with pytest.raises(ProtocolError, match="'width'"):
        EncodedArray.from_wire({**good, "width": 0})


def test_mask_refuses_mismatched_or_out_of_range_answers(paillier_keys):
    pub, priv = paillier_keys
    masked, mask = pub.encrypt(np.array([1.0, -1.0])).blind()
    answer = priv.decrypt_encoded(masked)
    with pytest.raises(ProtocolError, match="expected"):
        mask.unblind(EncodedArray(answer.ints[:1], answer.scale_bits))
    lied = EncodedArray(answer.ints + (masked.bound * 4), answer.scale_bits)
    with pytest.raises(ProtocolError, match="outside the range"):
        mask.unblind(lied)


def test_empty_operands(paillier_keys):
    pub, priv = paillier_keys
    empty = pub.encrypt(np.zeros((0, 3)))
    assert (priv.decrypt(np.ones((2, 0)) @ empty) == 0).all()
    assert priv.decrypt(pub.encrypt(np.zeros(0)) @ np.zeros((0, 2))).shape == (2,)
    assert priv.decrypt(pub.encrypt(np.zeros(0)) + 1.0).shape == (0,)


def test_keys_pickle_for_local_workers(paillier_keys):
    import pickle

    pub, priv = paillier_keys
    pub.encrypt(1.0)  # lazily built DJN state (lock, pool) must not block pickling
    pub2, priv2 = pickle.loads(pickle.dumps((pub, priv)))
    assert pub2 == pub and priv2.public_key == pub
    assert priv.decrypt(pub2.encrypt(np.array([2.5])))[0] == 2.5


def test_keys_under_1024_bits_refused_everywhere():
    """generate_keypair, a bare n, a phe key and a received key all refuse < 1024 bits."""
    import phe

    from vfl.crypto import PaillierPrivateKey, PaillierPublicKey, generate_keypair

    for bits in (512, 1023, 0, "2048"):
        with pytest.raises(ConfigError, match="n_bits"):
            generate_keypair(bits)  # type: ignore[arg-type]
    small_pub, small_priv = phe.generate_paillier_keypair(n_length=768)
    with pytest.raises(ConfigError, match="768 bits refused"):
        PaillierPublicKey(small_pub.n)
    with pytest.raises(ConfigError, match="refused"):
        PaillierPrivateKey.from_phe(small_pub, small_priv)
    with pytest.raises(ProtocolError, match="768 bits"):
        PaillierPublicKey.from_wire({"kind": "paillier.public_key", "n": format(small_pub.n, "x")})


def test_keys_made_by_phe_interoperate():
    """A key pair generated by `phe` itself: engine ciphertexts decrypt with phe's private key
    and phe ciphertexts (after phe arithmetic) with the engine's."""
    import phe

    from vfl.crypto import PaillierPrivateKey

    ppub, ppriv = phe.generate_paillier_keypair(n_length=1024)
    priv = PaillierPrivateKey.from_phe(ppub, ppriv)
    pub = priv.public_key
    x = np.array([-1.25, 0.0, 3e5])
    assert [ppriv.decrypt(v) for v in pub.encrypt(x).to_phe()] == list(x)
    summed = [ppub.encrypt(float(v)) * 2 + 1 for v in x]
    np.testing.assert_allclose(priv.decrypt(EncryptedArray.from_phe(summed, max_abs=1e6)),
                               2 * x + 1, atol=1e-12)

"""The X25519 layer: commutativity (what makes PSI work), hashing and point validation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from vfl.errors import ProtocolError
from vfl.psi import x25519
from vfl.psi.ids import encode_rows


def _us(n: int) -> list[bytes]:
    return x25519.hash_to_u(b"s" * 32, encode_rows([("i", np.arange(n))]))


def test_double_encryption_commutes():
    a, b = x25519.new_key(), x25519.new_key()
    us = b"".join(_us(50))
    ab = x25519.encrypt(a, x25519.encrypt(b, us))
    ba = x25519.encrypt(b, x25519.encrypt(a, us))
    assert ab == ba
    assert len(set(ab[i : i + 32] for i in range(0, len(ab), 32))) == 50
    assert x25519.encrypt(a, us) != x25519.encrypt(b, us)


def test_hash_encrypt_is_hash_then_multiply():
    key, salt = x25519.new_key(), x25519.new_salt()
    cols = [("o", ["x", "y", 3])]
    expected = x25519.encrypt(key, b"".join(x25519.hash_to_u(salt, encode_rows(cols))))
    assert x25519.hash_encrypt(key, salt, cols) == expected


def test_hash_is_salted_and_domain_separated():
    row = encode_rows([("o", ["alice"])])
    u1 = x25519.hash_to_u(b"\x01" * 32, row)[0]
    u2 = x25519.hash_to_u(b"\x02" * 32, row)[0]
    assert u1 != u2
    assert u1 != hashlib.sha256(b"\x01" * 32 + row[0]).digest()
    assert x25519.session_salt(b"a" * 32, b"b" * 32) != x25519.session_salt(b"b" * 32, b"a" * 32)


def test_check_points_rejects_bad_chunks():
    good = x25519.encrypt(x25519.new_key(), b"".join(_us(3)))
    assert x25519.check_points(good, 3, "t") == good
    with pytest.raises(ProtocolError, match="expected 2 points"):
        x25519.check_points(good, 2, "t")
    with pytest.raises(ProtocolError, match="expected 3 points"):
        x25519.check_points([good], 3, "t")
    bad = bytearray(good)
    bad[31] |= 0x80
    with pytest.raises(ProtocolError, match="canonical"):
        x25519.check_points(bytes(bad), 3, "t")


def test_low_order_point_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="invalid curve point"):
        x25519.encrypt(x25519.new_key(), bytes(32))  # u = 0 has order 1

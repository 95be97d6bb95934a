"""The X25519 arithmetic of ECDH-PSI, as functions a worker process runs on whole chunks.

A chunk is a ``bytes`` of 32-byte u-coordinates; one call does thousands of scalar
multiplications, so the pickling and scheduling cost is paid per chunk, not per id. Hashed
ids exist only inside `hash_encrypt`: they are never returned, sent or logged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from vfl.errors import ProtocolError
from vfl.psi.ids import Column, encode_rows

POINT = 32
SALT = 32
_SALT_DOMAIN = b"vfl-psi/v1/session-salt"
_HASH_DOMAIN = b"vfl-psi/v1/hash-to-u"


def new_key() -> bytes:
    """A fresh secret scalar for one PSI run (X25519 clamps it)."""
    return os.urandom(32)


def new_salt() -> bytes:
    return os.urandom(SALT)


def session_salt(guest_salt: bytes, host_salt: bytes) -> bytes:
    """``s = SHA-256(domain || s_g || s_h)``: neither party alone controls the hash function."""
    return hashlib.sha256(_SALT_DOMAIN + guest_salt + host_salt).digest()


def hash_to_u(salt: bytes, rows: Sequence[bytes]) -> list[bytes]:
    """``u = SHA-256(domain || s || row)`` (X25519 masks the top bit, RFC 7748)."""
    prefix = hashlib.sha256(_HASH_DOMAIN + salt)
    out = []
    for row in rows:
        h = prefix.copy()
        h.update(row)
        out.append(h.digest())
    return out


def _multiply(key: bytes, points: Sequence[bytes] | bytes) -> bytes:
    exchange = X25519PrivateKey.from_private_bytes(key).exchange
    public = X25519PublicKey.from_public_bytes
    if isinstance(points, bytes):
        points = [points[i : i + POINT] for i in range(0, len(points), POINT)]
    try:
        return b"".join([exchange(public(u)) for u in points])
    except ValueError as exc:  # a low-order point: only a hostile or broken peer sends one
        raise ProtocolError(f"invalid curve point in a PSI chunk: {exc}") from None


def hash_encrypt(key: bytes, salt: bytes, columns: Sequence[Column]) -> bytes:
    """``X25519(key, u(x))`` for every id row of the chunk, concatenated."""
    return _multiply(key, hash_to_u(salt, encode_rows(columns)))


def encrypt(key: bytes, points: bytes) -> bytes:
    """``X25519(key, p)`` for every 32-byte point of the chunk, concatenated."""
    return _multiply(key, points)


def check_points(data: object, count: int, what: str) -> bytes:
    """A received chunk must be exactly `count` canonical points (top bit clear)."""
    if not isinstance(data, bytes) or len(data) != count * POINT:
        size = len(data) if isinstance(data, bytes) else type(data).__name__
        raise ProtocolError(f"{what}: expected {count} points ({count * POINT} bytes), got {size}")
    if count and (np.frombuffer(data, np.uint8)[POINT - 1 :: POINT] & 0x80).any():
        raise ProtocolError(f"{what}: a point is not a canonical X25519 output")
    return data

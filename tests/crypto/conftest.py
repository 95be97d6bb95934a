"""One 1024-bit key pair per test session: key generation is the slow part of small tests."""

from __future__ import annotations

import pytest

from vfl.crypto import PaillierPrivateKey, PaillierPublicKey, generate_keypair


@pytest.fixture(scope="session")
def paillier_keys() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    return generate_keypair(1024)


@pytest.fixture(scope="session")
def foreign_paillier_keys() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    return generate_keypair(1024)

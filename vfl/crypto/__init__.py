"""Paillier homomorphic encryption engine: fast vectorized encryption, CRT decryption and
bucketed (Pippenger) ciphertext-plaintext matrix products over gmpy2. See docs/crypto.md."""

from vfl.crypto.encoding import (
    DEFAULT_MUL_SCALE_BITS,
    DEFAULT_SCALE_BITS,
    CryptoOverflowError,
)
from vfl.crypto.paillier import (
    DEFAULT_KEY_BITS,
    MIN_KEY_BITS,
    EncodedArray,
    EncryptedArray,
    Mask,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
)
from vfl.crypto.pool import ObfuscationPool

__all__ = [
    "DEFAULT_KEY_BITS",
    "DEFAULT_MUL_SCALE_BITS",
    "DEFAULT_SCALE_BITS",
    "MIN_KEY_BITS",
    "CryptoOverflowError",
    "EncodedArray",
    "EncryptedArray",
    "Mask",
    "ObfuscationPool",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "generate_keypair",
]

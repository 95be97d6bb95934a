"""Paillier key pairs: `phe` keys underneath (interoperable), bulk operations on top.

The public key carries the DJN fast-encryption state: ``h_s = (-x^2)^n mod n^2`` for a random
``x`` drawn by this process, and an :class:`~vfl.crypto.pool.ObfuscationPool` of precomputed
obfuscators. Anyone holding the public key can draw their own ``h_s``; it never leaves the
process (it is not part of the wire form).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np
import phe
from gmpy2 import mpz

from vfl.crypto import kernels
from vfl.crypto.encoding import to_signed
from vfl.crypto.pool import ObfuscationPool
from vfl.errors import ConfigError, ProtocolError

if TYPE_CHECKING:
    from vfl.crypto.paillier import EncodedArray, EncryptedArray

MIN_KEY_BITS = 1024
MAX_KEY_BITS = 8192
DEFAULT_KEY_BITS = 2048
_SMALL_PRIMES_PRODUCT = mpz(1)
for _p in range(3, 2000, 2):
    if gmpy2.is_prime(_p):
        _SMALL_PRIMES_PRODUCT *= _p


def generate_keypair(
    n_bits: int = DEFAULT_KEY_BITS,
) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """A fresh key pair from ``phe.generate_paillier_keypair``; refuses keys under 1024 bits."""
    if not isinstance(n_bits, int) or not MIN_KEY_BITS <= n_bits <= MAX_KEY_BITS:
        raise ConfigError(
            f"Paillier n_bits must be an int in [{MIN_KEY_BITS}, {MAX_KEY_BITS}], got {n_bits!r}"
        )
    pub_phe, priv_phe = phe.generate_paillier_keypair(n_length=n_bits)
    priv = PaillierPrivateKey.from_phe(pub_phe, priv_phe)
    return priv.public_key, priv


class PaillierPublicKey:
    """Public key ``n`` (g = n + 1) with vectorized encryption and matrix products."""

    def __init__(self, n: int) -> None:
        n = int(n)
        if n.bit_length() < MIN_KEY_BITS:
            raise ConfigError(
                f"Paillier key of {n.bit_length()} bits refused: at least {MIN_KEY_BITS} required"
            )
        self.n = mpz(n)
        self.nsquare = self.n * self.n
        self.n_bits = n.bit_length()
        self.max_int = (self.n - 1) // 2
        self.ciphertext_bytes = (int(self.nsquare).bit_length() + 7) // 8
        self.fingerprint = hashlib.sha256(n.to_bytes((self.n_bits + 7) // 8, "big")).hexdigest()
        self.executor: Executor | None = None  # used by the operators when set
        self._hs: Any = None
        self._pool: ObfuscationPool | None = None
        self._lazy = threading.Lock()  # one h_s and one pool per key object, across threads
        self._phe: phe.PaillierPublicKey | None = None

    # -- construction / interop -------------------------------------------------------------
    @classmethod
    def from_phe(cls, key: phe.PaillierPublicKey) -> PaillierPublicKey:
        out = cls(key.n)
        out._phe = key
        return out

    @property
    def phe(self) -> phe.PaillierPublicKey:
        if self._phe is None:
            self._phe = phe.PaillierPublicKey(int(self.n))
        return self._phe

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": "paillier.public_key",
            "n": format(int(self.n), "x"),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_wire(cls, d: object) -> PaillierPublicKey:
        """Validate a received key: hex ``n`` of 1024..8192 bits, odd, not a square, no small
        factors, and matching its fingerprint."""
        if not isinstance(d, dict) or d.get("kind") != "paillier.public_key":
            raise ProtocolError("public key message: expected a dict of kind 'paillier.public_key'")
        raw = d.get("n")
        if not isinstance(raw, str) or not 0 < len(raw) <= MAX_KEY_BITS // 4:
            raise ProtocolError("public key message: field 'n' must be a hex string")
        try:
            n = int(raw, 16)
        except ValueError as exc:
            raise ProtocolError("public key message: field 'n' is not hexadecimal") from exc
        if not MIN_KEY_BITS <= n.bit_length() <= MAX_KEY_BITS:
            raise ProtocolError(
                f"public key message: n has {n.bit_length()} bits, "
                f"must be {MIN_KEY_BITS}..{MAX_KEY_BITS}"
            )
        if n % 2 == 0 or gmpy2.is_square(n) or gmpy2.gcd(n, _SMALL_PRIMES_PRODUCT) != 1:
            raise ProtocolError(
                "public key message: n is not a valid RSA modulus (even, square "
                "or with a small factor)"
            )
        key = cls(n)
        if d.get("fingerprint") not in (None, key.fingerprint):
            raise ProtocolError("public key message: fingerprint does not match n")
        return key

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (to a local worker process) as ``n`` only: DJN state is per process."""
        return (PaillierPublicKey, (int(self.n),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaillierPublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"PaillierPublicKey(n_bits={self.n_bits}, fingerprint={self.fingerprint[:16]})"

    # -- fast encryption state --------------------------------------------------------------
    @property
    def hs(self) -> Any:
        """DJN base ``h_s = (-x^2)^n mod n^2`` for a random unit ``x`` (drawn once per key)."""
        with self._lazy:
            if self._hs is None:
                while True:
                    x = mpz(secrets.randbelow(int(self.n) - 2) + 2)
                    if gmpy2.gcd(x, self.n) == 1:
                        break
                self._hs = gmpy2.powmod(-(x * x) % self.n, self.n, self.nsquare)
            return self._hs

    @property
    def pool(self) -> ObfuscationPool:
        """Precomputed obfuscators; call ``pool.refill(k, background=True)`` when idle."""
        hs = self.hs
        with self._lazy:
            if self._pool is None:
                self._pool = ObfuscationPool(int(self.n), int(hs))
            return self._pool

    def obfuscators(self, count: int, executor: Executor | None = None) -> list[Any]:
        """``count`` single-use obfuscators: first from the pool, the rest computed now."""
        out = self.pool.take(count)
        missing = count - len(out)
        if missing:
            chunks = kernels.split(range(missing), kernels.workers(executor))
            calls = [(int(self.n), int(self.hs), len(c)) for c in chunks]
            for part in kernels.run(executor, kernels.obfuscators, calls):
                out.extend(part)
        return out

    # -- operations ---------------------------------------------------------------------------
    def encrypt(
        self, x: object, executor: Executor | None = None, scale_bits: int | None = None
    ) -> EncryptedArray:
        """Encrypt a scalar or 1-D/2-D array; floats at DEFAULT_SCALE_BITS, ints exactly."""
        from vfl.crypto.paillier import EncryptedArray

        return EncryptedArray.encrypt(self, x, executor=executor, scale_bits=scale_bits)

    def matmul(
        self, X: np.ndarray, enc: EncryptedArray, executor: Executor | None = None
    ) -> EncryptedArray:
        """``X @ enc`` for a plaintext matrix and a ciphertext vector/matrix, in parallel."""
        from vfl.crypto.paillier import plain_cipher_matmul

        return plain_cipher_matmul(X, enc, executor)

    def cipher_matmul(
        self, enc: EncryptedArray, W: np.ndarray, executor: Executor | None = None
    ) -> EncryptedArray:
        """``enc @ W`` for a ciphertext vector/matrix and a plaintext matrix, in parallel."""
        from vfl.crypto.paillier import cipher_plain_matmul

        return cipher_plain_matmul(enc, W, executor)


class PaillierPrivateKey:
    """The factors p, q of n; decryption by CRT, batched and parallel."""

    def __init__(self, public_key: PaillierPublicKey, p: int, q: int) -> None:
        if mpz(p) * mpz(q) != public_key.n:
            raise ConfigError("Paillier private key: p * q does not equal the public n")
        self.public_key = public_key
        self._p, self._q = (mpz(p), mpz(q)) if p < q else (mpz(q), mpz(p))
        self._phe: phe.PaillierPrivateKey | None = None

    @classmethod
    def from_phe(
        cls, pub_phe: phe.PaillierPublicKey, priv_phe: phe.PaillierPrivateKey
    ) -> PaillierPrivateKey:
        out = cls(PaillierPublicKey.from_phe(pub_phe), priv_phe.p, priv_phe.q)
        out._phe = priv_phe
        return out

    @property
    def phe(self) -> phe.PaillierPrivateKey:
        if self._phe is None:
            self._phe = phe.PaillierPrivateKey(self.public_key.phe, int(self._p), int(self._q))
        return self._phe

    def __repr__(self) -> str:
        return f"PaillierPrivateKey(fingerprint={self.public_key.fingerprint[:16]})"

    def decrypt_residues(self, enc: EncryptedArray, executor: Executor | None = None) -> list[Any]:
        """Plaintext integers in [0, n), flat, for ``enc`` under this key."""
        if enc.public_key != self.public_key:
            raise ProtocolError(
                f"cannot decrypt: ciphertext key {enc.public_key.fingerprint[:16]} is not "
                f"this private key's {self.public_key.fingerprint[:16]}"
            )
        flat = list(enc.ciphertexts.flat)
        calls = [
            (int(self._p), int(self._q), c)
            for c in kernels.split(flat, kernels.workers(executor), min_size=16)
        ]
        out: list[Any] = []
        for part in kernels.run(executor, kernels.decrypt_ints, calls):
            out.extend(part)
        return out

    def decrypt(self, enc: EncryptedArray, executor: Executor | None = None) -> np.ndarray:
        """Decrypt to float64 of ``enc``'s shape (checks each value against the tracked bound)."""
        return self.decrypt_encoded(enc, executor).decode()

    def decrypt_encoded(
        self, enc: EncryptedArray, executor: Executor | None = None
    ) -> EncodedArray:
        """Exact signed integers and scale: what a key owner returns for a masked value."""
        from vfl.crypto.paillier import EncodedArray

        n = int(self.public_key.n)
        ints = np.empty(enc.shape, dtype=object)
        values = [to_signed(int(m), n) for m in self.decrypt_residues(enc, executor)]
        if values and max(abs(v) for v in values) > enc.bound:
            raise ProtocolError(
                "decrypted value exceeds the bound tracked for this ciphertext: it was tampered "
                "with, encrypted under other assumptions, or overflowed"
            )
        ints.flat[:] = values
        return EncodedArray(ints, enc.scale_bits)

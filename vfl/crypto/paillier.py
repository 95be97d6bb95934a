"""Paillier: key pairs and the encrypted arrays they produce (one module: keys make arrays,
arrays carry their key).

Key pairs are `phe` keys underneath (interoperable) with bulk operations on top. The public key carries the DJN fast-encryption state: ``h_s = (-x^2)^n mod n^2`` for a random
``x`` drawn by this process, and an :class:`~vfl.crypto.pool.ObfuscationPool` of precomputed
obfuscators. Anyone holding the public key can draw their own ``h_s``; it never leaves the
process (it is not part of the wire form).

An encrypted array has one fixed-point scale per array. ``EncryptedArray`` holds a numpy object array of gmpy2 ciphertexts, its ``scale_bits`` (the
value is ``integer / 2**scale_bits``) and ``bound``, an upper bound on ``|integer|`` carried
through every operation (encrypt: max |m|; add: sum of bounds; multiply: bound * max |p|;
matmul: bound * largest row sum of |X|). An operation whose bound would reach n/2 raises
:class:`CryptoOverflowError`, so a result can never wrap around silently.

Homomorphic results are deterministic functions of their inputs (``c^0 = 1``, sums of the
same ciphertexts...). Before a computed ciphertext leaves the party, mask it with
:meth:`EncryptedArray.blind` (adds a random mask and fresh randomness) or at least call
:meth:`EncryptedArray.rerandomize`.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
from concurrent.futures import Executor
from typing import Any

import gmpy2
import numpy as np
import phe
from gmpy2 import mpz

from vfl.crypto import kernels
from vfl.crypto.encoding import (
    DEFAULT_MUL_SCALE_BITS,
    DEFAULT_SCALE_BITS,
    CryptoOverflowError,
    IntBlock,
    decode,
    encode,
    is_integer_input,
    to_signed,
)
from vfl.crypto.pool import ObfuscationPool
from vfl.errors import ConfigError, DataError, ProtocolError

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
        return EncryptedArray.encrypt(self, x, executor=executor, scale_bits=scale_bits)

    def matmul(
        self, X: np.ndarray, enc: EncryptedArray, executor: Executor | None = None
    ) -> EncryptedArray:
        """``X @ enc`` for a plaintext matrix and a ciphertext vector/matrix, in parallel."""
        return plain_cipher_matmul(X, enc, executor)

    def cipher_matmul(
        self, enc: EncryptedArray, W: np.ndarray, executor: Executor | None = None
    ) -> EncryptedArray:
        """``enc @ W`` for a ciphertext vector/matrix and a plaintext matrix, in parallel."""
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


# -- encrypted arrays -----------------------------------------------------------------------
MAX_WIRE_SCALE_BITS = 1 << 14
MAX_ENCODED_WIDTH = 4096  # bytes per integer in an EncodedArray message


def _objects(values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    """An object array of ``shape`` holding ``values`` as they are (no numpy conversion)."""
    out = np.empty(shape, dtype=object)
    out.reshape(-1)[:] = values if values else []
    return out


def _check_bound(bound: int, key: PaillierPublicKey, what: str) -> int:
    if bound > key.max_int:
        raise CryptoOverflowError(
            f"{what}: plaintext bound 2^{bound.bit_length()} reaches n/2 for a {key.n_bits}-bit "
            "key; use a larger key, smaller values or fewer scale bits"
        )
    return bound


def _encrypt_flat(key: PaillierPublicKey, ms: list[int], executor: Executor | None) -> list[Any]:
    """Encrypt signed integers: pooled obfuscators first, then fresh ones (in parallel)."""
    obf = key.pool.take(len(ms))
    out = kernels.encrypt_ints(int(key.n), int(key.hs), ms[: len(obf)], obf)
    rest = ms[len(obf) :]
    if rest:
        calls = [
            (int(key.n), int(key.hs), chunk)
            for chunk in kernels.split(rest, kernels.workers(executor), min_size=32)
        ]
        for part in kernels.run(executor, kernels.encrypt_ints, calls):
            out.extend(part)
    return out


class EncryptedArray:
    """A scalar, vector or matrix of Paillier ciphertexts under one key and one scale."""

    __array_ufunc__ = None  # numpy defers `ndarray + enc`, `ndarray @ enc` to our operators

    def __init__(
        self, public_key: PaillierPublicKey, ciphertexts: np.ndarray, scale_bits: int, bound: int
    ) -> None:
        if ciphertexts.ndim > 2:
            raise DataError(f"EncryptedArray supports up to 2 dimensions, got {ciphertexts.ndim}")
        self.public_key = public_key
        self.ciphertexts = ciphertexts
        self.scale_bits = int(scale_bits)
        self.bound = _check_bound(int(bound), public_key, "EncryptedArray")

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def encrypt(
        cls,
        key: PaillierPublicKey,
        x: object,
        executor: Executor | None = None,
        scale_bits: int | None = None,
    ) -> EncryptedArray:
        ints, scale, bound = encode(x, scale_bits, DEFAULT_SCALE_BITS)
        if ints.ndim > 2:
            raise DataError(f"can only encrypt scalars, vectors and matrices, got {ints.ndim}-D")
        _check_bound(bound, key, "encrypt")
        cs = _encrypt_flat(key, [int(v) for v in ints.flat], executor)
        return cls(key, _objects(cs, ints.shape), scale, bound)

    def _new(self, cs: np.ndarray, scale_bits: int, bound: int, what: str) -> EncryptedArray:
        return EncryptedArray(
            self.public_key, cs, scale_bits, _check_bound(bound, self.public_key, what)
        )

    # -- array protocol --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.ciphertexts.shape)

    @property
    def ndim(self) -> int:
        return self.ciphertexts.ndim

    @property
    def size(self) -> int:
        return int(self.ciphertexts.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d EncryptedArray")
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"EncryptedArray(shape={self.shape}, scale_bits={self.scale_bits}, "
            f"key={self.public_key.fingerprint[:16]})"
        )

    def __getitem__(self, key: Any) -> EncryptedArray:
        sub = self.ciphertexts[key]
        if not isinstance(sub, np.ndarray):
            sub = _objects([sub], ())
        return EncryptedArray(self.public_key, sub, self.scale_bits, self.bound)

    @property
    def T(self) -> EncryptedArray:
        return EncryptedArray(self.public_key, self.ciphertexts.T, self.scale_bits, self.bound)

    def reshape(self, *shape: Any) -> EncryptedArray:
        return EncryptedArray(
            self.public_key, self.ciphertexts.reshape(*shape), self.scale_bits, self.bound
        )

    # -- helpers ---------------------------------------------------------------------------
    def _same_key(self, other: EncryptedArray) -> None:
        if other.public_key != self.public_key:
            raise ProtocolError(
                f"ciphertexts under different keys ({self.public_key.fingerprint[:16]} vs "
                f"{other.public_key.fingerprint[:16]}) cannot be combined"
            )

    def with_scale(self, scale_bits: int) -> EncryptedArray:
        """The same values at a larger scale (multiplies every plaintext by 2^k)."""
        k = scale_bits - self.scale_bits
        if k < 0:
            raise DataError(f"cannot lower scale_bits from {self.scale_bits} to {scale_bits}")
        if k == 0:
            return self
        nsq = self.public_key.nsquare
        flat = gmpy2.powmod_base_list(list(self.ciphertexts.flat), 1 << k, nsq)
        return self._new(_objects(flat, self.shape), scale_bits, self.bound << k, "rescale")

    # -- arithmetic ------------------------------------------------------------------------
    def __add__(self, other: object) -> EncryptedArray:
        nsq = self.public_key.nsquare
        if isinstance(other, EncryptedArray):
            self._same_key(other)
            scale = max(self.scale_bits, other.scale_bits)
            a, b = self.with_scale(scale), other.with_scale(scale)
            cs = a.ciphertexts * b.ciphertexts % nsq
            return self._new(cs, scale, a.bound + b.bound, "add")
        arr = np.asarray(other)
        if is_integer_input(arr):
            a = self
        else:
            a = self.with_scale(max(self.scale_bits, DEFAULT_SCALE_BITS))
        ints, _, pbound = encode(arr, a.scale_bits, DEFAULT_SCALE_BITS)
        cs, ms = np.broadcast_arrays(a.ciphertexts, ints)
        n = self.public_key.n
        # c * (1 + m n) = c + n * (c m mod n)  (mod n^2): no full-size multiplication
        flat = [(c + n * (c * int(m) % n)) % nsq for c, m in zip(cs.flat, ms.flat, strict=True)]
        return self._new(_objects(flat, cs.shape), a.scale_bits, a.bound + pbound, "add")

    __radd__ = __add__

    def __neg__(self) -> EncryptedArray:
        nsq = self.public_key.nsquare
        flat = [gmpy2.invert(c, nsq) for c in self.ciphertexts.flat]
        return EncryptedArray(
            self.public_key, _objects(flat, self.shape), self.scale_bits, self.bound
        )

    def __sub__(self, other: object) -> EncryptedArray:
        if isinstance(other, EncryptedArray):
            return self + (-other)
        return self + (-np.asarray(other))

    def __rsub__(self, other: object) -> EncryptedArray:
        return (-self) + other

    def mul(
        self, other: object, scale_bits: int | None = None, executor: Executor | None = None
    ) -> EncryptedArray:
        """Elementwise product with plaintext (numpy broadcasting); the result's scale is the
        sum of both scales. Negative multipliers use the ciphertext's inverse."""
        if isinstance(other, EncryptedArray):
            raise TypeError("Paillier cannot multiply two ciphertexts; one factor must be plain")
        ints, pscale, pbound = encode(other, scale_bits, DEFAULT_MUL_SCALE_BITS)
        if ints.ndim > 2:
            raise DataError(f"multiplier has {ints.ndim} dimensions; at most 2 supported")
        cs, es = np.broadcast_arrays(self.ciphertexts, ints)
        executor = executor if executor is not None else self.public_key.executor
        nsq = int(self.public_key.nsquare)
        flat_c, flat_e = list(cs.flat), [int(e) for e in es.flat]
        calls = [
            (nsq, ch, flat_e[i : i + len(ch)])
            for i, ch in _offsets(kernels.split(flat_c, kernels.workers(executor), 16))
        ]
        out: list[Any] = []
        for part in kernels.run(executor, kernels.powmod_pairs, calls):
            out.extend(part)
        return self._new(
            _objects(out, cs.shape), self.scale_bits + pscale, self.bound * pbound, "multiply"
        )

    def __mul__(self, other: object) -> EncryptedArray:
        return self.mul(other)

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> EncryptedArray:
        return self.mul(1.0 / np.asarray(other, dtype=np.float64))

    def sum(self, axis: int | None = None) -> EncryptedArray:
        """Sum of the encrypted values over ``axis`` (None: all) by ciphertext products."""
        nsq = self.public_key.nsquare
        mulmod = np.frompyfunc(lambda a, b: a * b % nsq, 2, 1)
        if axis is None:
            flat = list(self.ciphertexts.flat)
            total = kernels.ONE
            for c in flat:
                total = total * c % nsq
            return self._new(_objects([total], ()), self.scale_bits, self.bound * len(flat), "sum")
        count = self.shape[axis]
        if count == 0:
            raise DataError(f"sum over empty axis {axis}")
        cs = mulmod.reduce(self.ciphertexts, axis=axis)
        if not isinstance(cs, np.ndarray):
            cs = _objects([cs], ())
        return self._new(cs.astype(object), self.scale_bits, self.bound * count, "sum")

    def __matmul__(self, other: object) -> EncryptedArray:
        return cipher_plain_matmul(self, np.asarray(other), self.public_key.executor)

    def __rmatmul__(self, other: object) -> EncryptedArray:
        return plain_cipher_matmul(np.asarray(other), self, self.public_key.executor)

    # -- leaving the party -----------------------------------------------------------------
    def rerandomize(self, executor: Executor | None = None) -> EncryptedArray:
        """Same plaintexts, fresh randomness: multiply by an encryption of zero."""
        nsq = self.public_key.nsquare
        obf = self.public_key.obfuscators(self.size, executor)
        flat = [c * r % nsq for c, r in zip(self.ciphertexts.flat, obf, strict=True)]
        return EncryptedArray(
            self.public_key, _objects(flat, self.shape), self.scale_bits, self.bound
        )

    def blind(
        self, stat_bits: int = 40, executor: Executor | None = None
    ) -> tuple[EncryptedArray, Mask]:
        """``[[v + r]]`` with ``r`` uniform in ``[0, (bound + 1) * 2^stat_bits)`` and fresh
        randomness, so ``v + r`` reveals ``v`` with statistical distance <= 2^-stat_bits."""
        if not isinstance(stat_bits, int) or not 0 < stat_bits <= 512:
            raise DataError(f"stat_bits must be an int in (0, 512], got {stat_bits!r}")
        span = (self.bound + 1) << stat_bits
        _check_bound(self.bound + span, self.public_key, "blind")
        rs = [secrets.randbelow(span) for _ in range(self.size)]
        enc_r = _encrypt_flat(self.public_key, rs, executor)
        nsq = self.public_key.nsquare
        flat = [c * e % nsq for c, e in zip(self.ciphertexts.flat, enc_r, strict=True)]
        masked = self._new(_objects(flat, self.shape), self.scale_bits, self.bound + span, "blind")
        mask = Mask(_objects(rs, self.shape), self.scale_bits, self.bound)
        return masked, mask

    def to_wire(self) -> dict[str, Any]:
        """Codec-safe dict: key fingerprint, scale, shape, bound (hex) and the ciphertexts as
        an IntBlock of fixed-width big-endian integers (width = bytes of n^2)."""
        width = self.public_key.ciphertext_bytes
        return {
            "kind": "paillier.array",
            "key": self.public_key.fingerprint,
            "scale_bits": self.scale_bits,
            "shape": list(self.shape),
            "bound": format(self.bound, "x"),
            "data": IntBlock(
                width, b"".join(mpz(c).to_bytes(width, "big") for c in self.ciphertexts.flat)
            ),
        }

    @classmethod
    def from_wire(cls, d: object, public_key: PaillierPublicKey) -> EncryptedArray:
        """Validate and load a received array: key fingerprint, layout, 0 < c < n^2 and
        gcd(c, n) = 1; raises ProtocolError naming the field at fault."""
        what = "encrypted array message"
        if not isinstance(d, dict) or d.get("kind") != "paillier.array":
            raise ProtocolError(f"{what}: expected a dict of kind 'paillier.array'")
        if d.get("key") != public_key.fingerprint:
            raise ProtocolError(
                f"{what}: encrypted under key {str(d.get('key'))[:16]!r}, expected "
                f"{public_key.fingerprint[:16]!r} (foreign key)"
            )
        scale = _wire_int(d, "scale_bits", 0, MAX_WIRE_SCALE_BITS, what)
        shape = _wire_shape(d, what)
        bound = _wire_hex(d, "bound", what)
        if bound > public_key.max_int:
            raise ProtocolError(f"{what}: bound exceeds n/2")
        block = d.get("data")
        width, count = public_key.ciphertext_bytes, math.prod(shape)
        if not isinstance(block, IntBlock) or block.width != width or len(block) != count:
            raise ProtocolError(
                f"{what}: field 'data' must be an IntBlock of {count} integers "
                f"of {width} bytes (n^2 of this key) for shape {tuple(shape)}"
            )
        data, nsq, n = block.data, public_key.nsquare, public_key.n
        cs = [mpz.from_bytes(data[i : i + width], "big") for i in range(0, len(data), width)]
        for i, c in enumerate(cs):
            if not 0 < c < nsq:
                raise ProtocolError(f"{what}: ciphertext {i} is outside (0, n^2)")
        acc = kernels.ONE
        for c in cs:
            acc = acc * c % n
        if gmpy2.gcd(acc, n) != 1:
            bad = next(i for i, c in enumerate(cs) if gmpy2.gcd(c, n) != 1)
            raise ProtocolError(f"{what}: ciphertext {bad} is not a unit mod n")
        return cls(public_key, _objects(cs, tuple(shape)), scale, bound)

    # -- phe interop -----------------------------------------------------------------------
    @classmethod
    def from_phe(
        cls, numbers: Any, public_key: PaillierPublicKey | None = None, max_abs: float | None = None
    ) -> EncryptedArray:
        """Import ``phe.EncryptedNumber`` s (any shape up to 2-D). Exponents are aligned to
        one scale; without ``max_abs`` the bound is phe's own ``max_int`` (n/3)."""
        arr = np.asarray(numbers, dtype=object)
        items = list(arr.flat)
        if not items or not all(isinstance(x, phe.EncryptedNumber) for x in items):
            raise DataError("from_phe expects a non-empty array of phe.EncryptedNumber")
        key = public_key or PaillierPublicKey.from_phe(items[0].public_key)
        if any(x.public_key.n != key.n for x in items):
            raise ProtocolError("from_phe: numbers are encrypted under different keys")
        scale = max(0, max(-4 * x.exponent for x in items))
        if max_abs is not None:
            bound = math.ceil(float(max_abs)) << scale
        else:  # phe's own range, times the largest alignment factor applied below
            bound = int(key.phe.max_int) << (scale + 4 * max(x.exponent for x in items))
        _check_bound(bound, key, "from_phe (exponents aligned to one scale; pass max_abs)")
        nsq = key.nsquare
        cs = []
        for x in items:
            k = scale + 4 * x.exponent
            c = mpz(x.ciphertext(be_secure=False))
            cs.append(gmpy2.powmod(c, 1 << k, nsq) if k else c)
        return cls(key, _objects(cs, arr.shape), scale, bound)

    def to_phe(self) -> np.ndarray:
        """An object array of ``phe.EncryptedNumber`` (scale rounded up to a multiple of 4)."""
        enc = self.with_scale(-(-self.scale_bits // 4) * 4)
        pk = self.public_key.phe
        out = [phe.EncryptedNumber(pk, int(c), -enc.scale_bits // 4) for c in enc.ciphertexts.flat]
        return _objects(out, self.shape)


class EncodedArray:
    """Exact decrypted integers with their scale: what a key owner sends back."""

    def __init__(self, ints: np.ndarray, scale_bits: int) -> None:
        self.ints = ints
        self.scale_bits = int(scale_bits)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.ints.shape)

    def decode(self) -> np.ndarray:
        return decode(self.ints, self.scale_bits)

    def to_wire(self) -> dict[str, Any]:
        """Signed integers as fixed-width big-endian two's-complement bytes."""
        peak = max((abs(int(v)) for v in self.ints.flat), default=0)
        width = peak.bit_length() // 8 + 1
        return {
            "kind": "encoded.array",
            "scale_bits": self.scale_bits,
            "shape": list(self.shape),
            "width": width,
            "data": b"".join(int(v).to_bytes(width, "big", signed=True) for v in self.ints.flat),
        }

    @classmethod
    def from_wire(cls, d: object) -> EncodedArray:
        what = "encoded array message"
        if not isinstance(d, dict) or d.get("kind") != "encoded.array":
            raise ProtocolError(f"{what}: expected a dict of kind 'encoded.array'")
        scale = _wire_int(d, "scale_bits", 0, MAX_WIRE_SCALE_BITS, what)
        shape = _wire_shape(d, what)
        width = _wire_int(d, "width", 1, MAX_ENCODED_WIDTH, what)
        data = d.get("data")
        count = math.prod(shape)
        if not isinstance(data, bytes) or len(data) != width * count:
            raise ProtocolError(
                f"{what}: field 'data' must be {width * count} bytes for shape {tuple(shape)}"
            )
        ints = [
            int.from_bytes(data[i : i + width], "big", signed=True)
            for i in range(0, len(data), width)
        ]
        return cls(_objects(ints, tuple(shape)), scale)


class Mask:
    """The secret additive mask of :meth:`EncryptedArray.blind`; stays with its creator."""

    def __init__(self, r: np.ndarray, scale_bits: int, bound: int) -> None:
        self._r = r
        self.scale_bits = scale_bits
        self.bound = bound

    def __repr__(self) -> str:
        return f"Mask(shape={self._r.shape}, scale_bits={self.scale_bits})"

    def unblind(self, encoded: EncodedArray) -> np.ndarray:
        """``(v + r) - r`` decoded; checks shape, scale and that |v| is within its bound."""
        if encoded.shape != self._r.shape or encoded.scale_bits != self.scale_bits:
            raise ProtocolError(
                f"unblind: got shape {encoded.shape} / scale {encoded.scale_bits}, expected "
                f"{self._r.shape} / {self.scale_bits}"
            )
        values = [int(x) - int(r) for x, r in zip(encoded.ints.flat, self._r.flat, strict=True)]
        if values and max(abs(v) for v in values) > self.bound:
            raise ProtocolError(
                "unblind: a returned value is outside the range of the masked "
                "plaintext (wrong or tampered decryption)"
            )
        return decode(_objects(values, self._r.shape), self.scale_bits)


# -- wire helpers --------------------------------------------------------------------------
def _wire_int(d: dict[str, Any], field: str, lo: int, hi: int, what: str) -> int:
    v = d.get(field)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProtocolError(f"{what}: field {field!r} must be an int in [{lo}, {hi}]")
    return v


def _wire_hex(d: dict[str, Any], field: str, what: str) -> int:
    v = d.get(field)
    if not isinstance(v, str) or not 0 < len(v) <= 4096:
        raise ProtocolError(f"{what}: field {field!r} must be a hex string")
    try:
        return int(v, 16)
    except ValueError as exc:
        raise ProtocolError(f"{what}: field {field!r} is not hexadecimal") from exc


def _wire_shape(d: dict[str, Any], what: str) -> list[int]:
    shape = d.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > 2
        or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1 << 31 for s in shape
        )
    ):
        raise ProtocolError(f"{what}: field 'shape' must be a list of at most 2 sizes")
    return shape


# -- matrix products -----------------------------------------------------------------------
def _offsets(chunks: list[Any]) -> list[tuple[int, Any]]:
    out, pos = [], 0
    for ch in chunks:
        out.append((pos, ch))
        pos += len(ch)
    return out


def _max_line_sum(E: np.ndarray) -> int:
    """``max_r sum_j |E[r, j]|`` exactly (object arithmetic when int64 could overflow)."""
    if E.size == 0:
        return 0
    A = np.abs(E)
    if A.dtype != object and int(A.max()) * E.shape[1] >= 1 << 62:
        A = A.astype(object)
    return int(max(A.sum(axis=1)))


def _multiexp(
    key: PaillierPublicKey, base_rows: list[list[Any]], E: np.ndarray, executor: Executor | None
) -> list[list[Any]]:
    """``out[b][r] = prod_j base_rows[b][j] ^ E[r, j] mod n^2``, split over the executor:
    by base rows when there are enough of them, else by columns (partial products)."""
    nsq = int(key.nsquare)
    w = kernels.workers(executor)
    ncols = E.shape[1]
    if w == 1 or len(base_rows) * E.shape[0] * ncols < 2048:
        return kernels.multiexp_rows(nsq, base_rows, E)
    if len(base_rows) >= w:
        shared = kernels.share(executor, E)  # every chunk multiplies by all of E
        calls = [(nsq, chunk, shared) for chunk in kernels.split(base_rows, w, min_size=1)]
        out: list[list[Any]] = []
        for part in kernels.run(executor, kernels.multiexp_rows, calls):
            out.extend(part)
        return out
    step = math.ceil(ncols / min(w, max(1, ncols // 256)))
    calls = [
        (nsq, [row[a : a + step] for row in base_rows], E[:, a : a + step])
        for a in range(0, ncols, step)
    ]
    parts = kernels.run(executor, kernels.multiexp_rows, calls)
    m = mpz(nsq)
    result = parts[0]
    for part in parts[1:]:
        result = [
            [a * b % m for a, b in zip(ra, rb, strict=True)]
            for ra, rb in zip(result, part, strict=True)
        ]
    return result


def plain_cipher_matmul(
    X: np.ndarray, enc: EncryptedArray, executor: Executor | None = None
) -> EncryptedArray:
    """``X @ enc``: X (m, n) or (n,) plaintext; enc (n,) or (n, k) ciphertext."""
    X = np.asarray(X)
    if X.ndim not in (1, 2) or enc.ndim not in (1, 2) or X.shape[-1] != enc.shape[0]:
        raise DataError(f"matmul shapes {X.shape} @ {enc.shape} do not align")
    E, pscale, _ = encode(X[None, :] if X.ndim == 1 else X, None, DEFAULT_MUL_SCALE_BITS)
    C = enc.ciphertexts[:, None] if enc.ndim == 1 else enc.ciphertexts  # (n, k)
    base_rows = [list(C[:, j]) for j in range(C.shape[1])]
    res = _multiexp(enc.public_key, base_rows, E, executor)  # (k, m)
    out = _objects([v for row in res for v in row], (C.shape[1], E.shape[0])).T
    shape = X.shape[:-1] + enc.shape[1:]
    return enc._new(
        out.reshape(shape), enc.scale_bits + pscale, enc.bound * _max_line_sum(E), "matmul"
    )


def cipher_plain_matmul(
    enc: EncryptedArray, W: np.ndarray, executor: Executor | None = None
) -> EncryptedArray:
    """``enc @ W``: enc (n,) or (b, n) ciphertext; W (n,) or (n, d) plaintext."""
    W = np.asarray(W)
    if W.ndim not in (1, 2) or enc.ndim not in (1, 2) or W.shape[0] != enc.shape[-1]:
        raise DataError(f"matmul shapes {enc.shape} @ {W.shape} do not align")
    W2 = W[:, None] if W.ndim == 1 else W
    E, pscale, _ = encode(W2.T, None, DEFAULT_MUL_SCALE_BITS)  # (d, n)
    C = enc.ciphertexts[None, :] if enc.ndim == 1 else enc.ciphertexts  # (b, n)
    base_rows = [list(C[i]) for i in range(C.shape[0])]
    res = _multiexp(enc.public_key, base_rows, E, executor)  # (b, d)
    out = _objects([v for row in res for v in row], (C.shape[0], E.shape[0]))
    shape = enc.shape[:-1] + W.shape[1:]
    return enc._new(
        out.reshape(shape), enc.scale_bits + pscale, enc.bound * _max_line_sum(E), "matmul"
    )

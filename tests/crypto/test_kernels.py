"""Kernels: DJN obfuscators, Pippenger against naive powmods, and the same results on a
real process pool as serially."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz

from vfl.crypto import EncryptedArray, kernels


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as ex:
        yield ex


def test_obfuscators_are_fresh_encryptions_of_zero(paillier_keys):
    pub, priv = paillier_keys
    obf = kernels.obfuscators(int(pub.n), int(pub.hs), 20)
    assert len(set(obf)) == 20
    zeros = EncryptedArray(pub, np.array(obf, dtype=object), 0, 0)
    assert (priv.decrypt(zeros) == 0).all()


def test_obfuscator_is_hs_to_the_random_alpha(paillier_keys, monkeypatch):
    """The fixed-base table walk equals one full powmod ``h_s^alpha`` for the alpha drawn."""
    pub, _ = paillier_keys
    nbytes = kernels.alpha_bytes(pub.n_bits)
    for alpha in [b"\x00" * nbytes, b"\xff" * nbytes, bytes(range(7, 7 + nbytes))]:
        monkeypatch.setattr(kernels.os, "urandom", lambda k, a=alpha: a[:k])
        expected = gmpy2.powmod(pub.hs, int.from_bytes(alpha, "big"), pub.nsquare)
        assert kernels.obfuscators(int(pub.n), int(pub.hs), 1) == [expected]


def test_table_window_keeps_tables_small():
    assert [kernels.djn_window(b) for b in (1024, 2048, 3072, 4096)] == [10, 10, 8, 7]
    for bits in (1024, 2048, 3072, 4096, 8192):
        w = kernels.djn_window(bits)
        rows = -(-8 * kernels.alpha_bytes(bits) // w)
        assert rows * 2**w * bits // 4 <= kernels.MAX_TABLE_BYTES


@pytest.mark.parametrize("n", [1, 3, 40, 700])
def test_multiexp_matches_naive(paillier_keys, n):
    pub, _ = paillier_keys
    nsq = pub.nsquare
    rng = np.random.default_rng(n)
    bases = [mpz(int(v)) + 2 for v in rng.integers(2, 2**62, size=n)]
    for e in [
        rng.integers(-(2**40), 2**40, size=n),
        rng.integers(0, 2, size=n),
        np.array([int(v) * 2**80 - 7 for v in rng.integers(-9, 9, size=n)], dtype=object),
        np.zeros(n, dtype=np.int64),
    ]:
        naive = mpz(1)
        for b, x in zip(bases, e, strict=True):
            naive = naive * gmpy2.powmod(b, int(x), nsq) % nsq
        assert kernels.multiexp(bases, e, nsq) == naive


def test_parallel_results_equal_serial(paillier_keys, pool):
    pub, priv = paillier_keys
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    X = rng.integers(-50, 50, size=(1000, 3))
    A, W = rng.normal(size=(8, 5)), rng.normal(size=(5, 2))
    enc = pub.encrypt(x, executor=pool)
    np.testing.assert_allclose(priv.decrypt(enc, executor=pool), x, atol=1e-11)
    eA = pub.encrypt(A, executor=pool)
    assert (
        priv.decrypt_encoded(pub.matmul(X.T, enc, executor=pool)).ints
        == priv.decrypt_encoded(X.T @ enc).ints
    ).all()
    np.testing.assert_allclose(
        priv.decrypt(pub.cipher_matmul(eA, W, executor=pool)), A @ W, atol=1e-7
    )
    np.testing.assert_allclose(priv.decrypt(enc.mul(x, executor=pool)), x * x, atol=1e-6)
    masked, mask = enc.blind(executor=pool)
    np.testing.assert_allclose(
        mask.unblind(priv.decrypt_encoded(masked, executor=pool)), x, atol=1e-11
    )


def test_pool_refills_in_background_and_hands_out_once(paillier_keys):
    pub, priv = paillier_keys
    pub.pool.refill(30, background=True)
    pub.pool.wait()
    assert len(pub.pool) == 30
    enc = pub.encrypt(np.arange(10))
    assert len(pub.pool) == 20
    assert list(priv.decrypt(enc)) == list(range(10))
    taken = pub.pool.take(25)
    assert len(taken) == 20 and len(pub.pool) == 0


@pytest.mark.parametrize(("rows", "n"), [(200, 3), (64, 8), (3, 200)])
def test_multiexp_rows_both_strategies_match_naive(paillier_keys, rows, n):
    """Many exponent rows over few bases use shared tables, the others Pippenger."""
    pub, _ = paillier_keys
    nsq = pub.nsquare
    rng = np.random.default_rng(rows)
    bases = [pub.encrypt(float(v)).ciphertexts[()] for v in rng.normal(size=n)]
    E = rng.integers(-(2**33), 2**33, size=(rows, n))
    E[rng.random((rows, n)) < 0.2] = 0
    got = kernels.multiexp_rows(int(nsq), [bases, bases[::-1]], E)
    for b, base_row in enumerate([bases, bases[::-1]]):
        for r in range(rows):
            naive = mpz(1)
            for base, x in zip(base_row, E[r], strict=True):
                naive = naive * gmpy2.powmod(base, int(x), nsq) % nsq
            assert got[b][r] == naive

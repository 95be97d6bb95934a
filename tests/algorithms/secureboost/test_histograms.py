"""The host's encrypted histograms decrypt to the guest's plaintext ones, exactly (packed g/h
per row, several candidates per ciphertext); bins follow the threshold rule the parts use."""

from __future__ import annotations

import numpy as np
import pytest

from vfl.algorithms.secureboost.binning import Bins
from vfl.algorithms.secureboost.histograms import (
    Candidates,
    encrypted_candidates,
    encrypted_histogram,
    plain_candidates,
    plain_histogram,
)
from vfl.algorithms.secureboost.packing import GHLayout, horner_pack
from vfl.crypto import EncryptedArray, generate_keypair
from vfl.errors import ProtocolError


def test_encrypted_candidate_sums_equal_the_plaintext_ones_and_tampering_is_caught():
    rng = np.random.default_rng(3)
    n = 300
    X = rng.normal(size=(n, 3))
    X[rng.random(n) < 0.1, 1] = np.nan  # missing values: their own bin, both directions
    bins = Bins.fit(X, 8)
    codes = bins.transform(X)
    cand = Candidates.of(bins, np.isnan(X).any(axis=0))
    assert cand.missing_left.any() and not cand.missing_left[cand.feature != 1].any()
    layout = GHLayout.for_rows(n, 2.0)
    g, h = layout.quantize(rng.uniform(-2, 2, n)), layout.quantize(rng.uniform(0, 0.5, n))
    public, private = generate_keypair(1024)
    enc = public.encrypt(layout.encode_rows(g, h))
    nsq = int(public.nsquare)
    sums = encrypted_candidates(nsq, encrypted_histogram(nsq, list(enc.ciphertexts), codes, bins.n_codes, None), cand)
    per = layout.per_ciphertext(1024)
    assert per >= 7
    packed = horner_pack(nsq, layout.pair_bits, [sums[a:a + per] for a in range(0, len(sums), per)])
    cts = np.empty(len(packed), dtype=object)
    cts[:] = packed
    decrypted = private.decrypt_encoded(EncryptedArray(public, cts, 0, layout.packed_bound(per))).ints.tolist()
    gl, hl = layout.unpack(decrypted, len(cand), per)
    pg, ph = plain_candidates(*plain_histogram(codes, g, h, bins.n_codes), cand)
    np.testing.assert_allclose(gl, pg, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hl, ph, rtol=0, atol=1e-9)
    with pytest.raises(ProtocolError, match="bits beyond its slots"):
        layout.unpack([decrypted[0] + (1 << (layout.pair_bits * per + 3))] + decrypted[1:], len(cand), per)


def test_bins_route_rows_as_the_threshold_rule():
    rng = np.random.default_rng(4)
    X = np.c_[rng.normal(size=500), rng.integers(0, 3, 500).astype(float)]
    bins = Bins.fit(X, 32)
    codes = bins.transform(X)
    assert len(bins.edges[0]) == 31 and len(bins.edges[1]) == 2  # few distinct values: fewer bins
    for f in range(2):
        for b in range(bins.candidates(f)):
            np.testing.assert_array_equal(codes[:, f] <= b, X[:, f] <= bins.threshold(f, b))

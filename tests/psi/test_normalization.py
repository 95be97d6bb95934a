"""Id spellings: normalisation agreed in the handshake, and the warning when it is missing."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from tests.psi.test_ecdh import _run
from vfl.errors import DataError, PolicyError

N, DIFFERENT = 5_000, 3_000
NORMALIZE = {"strip": True, "lower": True, "zero_pad": 0}


def spelled_two_ways() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same 5,000 customers; on the host 3,000 of them differ by case or spaces only."""
    ids = [f"Cust-{i:05d}" for i in range(N)]
    rng = np.random.default_rng(0)
    changed = set(rng.choice(N, DIFFERENT, replace=False).tolist())
    host = [(f" {v.upper()}" if i % 2 else f"{v.lower()}  ") if i in changed else v
            for i, v in enumerate(ids)]
    return pd.DataFrame({"id": ids}), pd.DataFrame({"id": host})


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "PSI matched" in r.getMessage()]


def test_without_normalisation_the_guest_is_warned_with_sizes_and_a_hint(caplog):
    guest, host = spelled_two_ways()
    with caplog.at_level(logging.WARNING):
        results = _run(guest, {"partner": host})
    assert results["bank"].size == N - DIFFERENT
    [message] = warnings_of(caplog)
    assert "PSI matched 2000 ids, 40% of the smaller set (this party 5000, 'partner' 5000)" in message
    assert "case, surrounding spaces" in message and "id_normalize" in message


def test_the_warning_ratio_is_configurable(caplog):
    guest, host = spelled_two_ways()
    with caplog.at_level(logging.WARNING):
        _run(guest, {"partner": host}, guest_kw={"warn_ratio": 0.3})
    assert warnings_of(caplog) == []


def test_agreed_normalisation_matches_case_and_space_variants(caplog):
    guest, host = spelled_two_ways()
    with caplog.at_level(logging.WARNING):
        results = _run(guest, {"partner": host}, guest_kw={"normalize_ids": NORMALIZE},
                       host_kw={"normalize_ids": NORMALIZE})
    assert results["bank"].size == N and results["partner"].size == N
    # rows line up customer by customer, each party's own spelling kept in its table
    aligned_g = guest["id"].iloc[results["bank"].rows].str.lower().tolist()
    aligned_h = host["id"].iloc[results["partner"].rows].str.strip().str.lower().tolist()
    assert aligned_g == aligned_h
    assert warnings_of(caplog) == []


def test_zero_padding_to_a_width():
    guest = pd.DataFrame({"id": ["00123", "00042", "07"]})
    host = pd.DataFrame({"id": ["123", "42", "0007", "9"]})
    pad = {"zero_pad": 5}
    results = _run(guest, {"partner": host}, guest_kw={"normalize_ids": pad},
                   host_kw={"normalize_ids": pad})
    assert results["bank"].size == 3


def test_a_normalisation_mismatch_is_refused_by_the_host():
    guest, host = spelled_two_ways()
    results = _run(guest, {"partner": host}, catch=True, guest_kw={"normalize_ids": NORMALIZE})
    assert isinstance(results["partner"], PolicyError)
    assert "id normalisation differs" in str(results["partner"])
    assert isinstance(results["bank"], PolicyError)
    assert "'strip': True" in str(results["bank"]) and "id_normalize" in str(results["bank"])


def test_a_bad_normalisation_is_an_error():
    with pytest.raises(DataError, match="zero_pad"):
        _run(pd.DataFrame({"id": ["a"]}), {"partner": pd.DataFrame({"id": ["a"]})},
             guest_kw={"normalize_ids": {"zero_pad": -1}})

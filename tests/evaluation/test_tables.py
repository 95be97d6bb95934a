"""Lift/gain, calibration and PSI tables against direct computations and scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve

from vfl.errors import DataError
from vfl.evaluation import calibration_table, ks_exact, lift_table, psi, psi_table


def sample(seed: int, n: int = 1000, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y)))
    if decimals is not None:
        s = np.round(s, decimals)
    return y, s


def test_lift_table_small_case_by_hand():
    # 10 rows, 5 bands of 2, scores descending 1.0..0.1; positives at scores 1.0, 0.9, 0.7, 0.2.
    s = np.arange(10, 0, -1) / 10
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 0])
    t = lift_table(y, s, n_bins=5)
    assert t["bin"].tolist() == [1, 2, 3, 4, 5]
    assert t["rows"].tolist() == [2] * 5
    assert t["positives"].tolist() == [2, 1, 0, 0, 1]
    assert t["max_score"].tolist() == [1.0, 0.8, 0.6, 0.4, 0.2]
    assert t["positive_rate"].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0, 0.5])
    assert t["lift"].tolist() == pytest.approx([2.5, 1.25, 0.0, 0.0, 1.25])  # overall rate 0.4
    assert t["gain"].tolist() == pytest.approx([0.5, 0.75, 0.75, 0.75, 1.0])
    assert t["cum_population"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert t["cum_lift"].tolist() == pytest.approx([2.5, 1.875, 1.25, 0.9375, 1.0])
    neg_share = np.cumsum([0, 1, 2, 2, 1]) / 6
    assert t["ks"].tolist() == pytest.approx((t["gain"] - neg_share).tolist())


def test_lift_deciles_match_rank_deciles_without_ties():
    y, s = sample(seed=1, n=1000)
    t = lift_table(y, s)
    order = np.argsort(-s)
    expected = y[order].reshape(10, 100).sum(axis=1)
    assert t["positives"].tolist() == expected.tolist()
    assert t["rows"].tolist() == [100] * 10
    assert (t["min_score"].to_numpy()[:-1] > t["max_score"].to_numpy()[1:]).all()
    assert t["gain"].iloc[-1] == pytest.approx(1.0) and t["ks"].iloc[-1] == pytest.approx(0.0)
    assert t["ks"].max() <= ks_exact(y, s) + 1e-12


def test_lift_keeps_tie_groups_whole_and_drops_empty_bands():
    y, s = sample(seed=2, n=500, decimals=1)  # about 10 distinct scores for 500 rows
    t = lift_table(y, s, n_bins=10)
    assert t["rows"].sum() == 500
    assert (t["min_score"].to_numpy()[:-1] > t["max_score"].to_numpy()[1:]).all()  # no shared score
    assert t["bin"].tolist() == list(range(1, len(t) + 1))
    for _, band in t.iterrows():  # each band holds exactly the rows with its scores
        inside = (s >= band["min_score"]) & (s <= band["max_score"])
        assert inside.sum() == band["rows"] and y[inside].sum() == band["positives"]
    one = lift_table([0, 1, 0, 1], [0.5] * 4, n_bins=10)
    assert len(one) == 1 and one["lift"].iloc[0] == 1.0


def test_lift_weights_equal_repeated_rows():
    y, s = sample(seed=3, n=300, decimals=2)
    reps = np.random.default_rng(3).integers(1, 4, size=300)
    weighted = lift_table(y, s, sample_weight=reps)
    repeated = lift_table(np.repeat(y, reps), np.repeat(s, reps))
    cols = ["min_score", "max_score", "weight", "positives", "lift", "gain", "cum_lift", "ks"]
    pd.testing.assert_frame_equal(weighted[cols], repeated[cols])


def test_lift_rejects_one_class_and_bad_bins():
    with pytest.raises(DataError, match="only class 0"):
        lift_table([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="n_bins must be a positive integer"):
        lift_table([0, 1, 0], [0.1, 0.2, 0.3], n_bins=0)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [5, 10])
def test_calibration_matches_sklearn(strategy, n_bins):
    y, s = sample(seed=4, n=2000, decimals=3)
    t = calibration_table(y, s, n_bins=n_bins, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, s, n_bins=n_bins, strategy=strategy)
    np.testing.assert_allclose(t["observed_rate"], prob_true, atol=1e-12)
    np.testing.assert_allclose(t["mean_predicted"], prob_pred, atol=1e-12)
    assert t["rows"].sum() == 2000


def test_calibration_weights_and_empty_bins():
    y = [0, 1, 1, 0]
    s = [0.05, 0.05, 0.95, 0.95]
    t = calibration_table(y, s, n_bins=10, sample_weight=[3, 1, 1, 1])
    assert t["lower"].tolist() == pytest.approx([0.0, 0.9])  # 8 empty bins dropped
    assert t["observed_rate"].tolist() == pytest.approx([0.25, 0.5])
    assert t["weight"].tolist() == [4.0, 2.0]
    with pytest.raises(DataError, match="probabilities"):
        calibration_table([0, 1], [-1.0, 2.0])


def test_psi_of_identical_samples_is_zero():
    _, s = sample(seed=5)
    assert psi(s, s) == 0.0
    assert psi(s, np.random.default_rng(0).permutation(s)) == 0.0


def test_psi_small_case_by_hand():
    ref = np.arange(100.0)  # quartile edges 24, 49, 74 -> 25 rows per bin
    cur = np.arange(50.0)  # all in the two lowest bins
    t = psi_table(ref, cur, n_bins=4)
    assert t["upper"].tolist()[:3] == [24.0, 49.0, 74.0]
    assert t["reference_share"].tolist() == [0.25] * 4
    assert t["current_share"].tolist() == [0.5, 0.5, 0.0, 0.0]
    eps = 1e-4  # the documented floor for an empty bin
    expected = 2 * (0.5 - 0.25) * np.log(2) + 2 * (eps - 0.25) * np.log(eps / 0.25)
    assert psi(ref, cur, n_bins=4) == pytest.approx(expected)
    assert psi(ref, cur, n_bins=4, epsilon=1e-3) < psi(ref, cur, n_bins=4)


def test_psi_edges_are_reference_quantiles_and_shift_is_detected():
    rng = np.random.default_rng(6)
    ref, cur = rng.normal(size=5000), rng.normal(loc=0.5, size=4000)
    t = psi_table(ref, cur, n_bins=10)
    q = np.quantile(ref, np.arange(1, 10) / 10, method="inverted_cdf")
    np.testing.assert_array_equal(t["upper"].to_numpy()[:-1], q)
    np.testing.assert_allclose(t["reference_share"], 0.1, atol=1e-3)
    assert t["current_share"].sum() == pytest.approx(1.0)
    assert 0.15 < psi(ref, cur) < 0.4  # half a standard deviation: a clear shift
    assert psi(ref, rng.normal(size=4000)) < 0.02


def test_psi_weights_equal_repeated_rows_and_ties_merge_bins():
    rng = np.random.default_rng(7)
    ref, cur = np.round(rng.random(400), 2), np.round(rng.random(300) ** 2, 2)
    wr, wc = rng.integers(1, 4, size=400), rng.integers(1, 4, size=300)
    assert psi(ref, cur, reference_weight=wr, current_weight=wc) == pytest.approx(
        psi(np.repeat(ref, wr), np.repeat(cur, wc))
    )
    coarse = psi_table(np.array([0.0] * 80 + [1.0] * 20), np.array([0.0, 1.0]), n_bins=10)
    assert coarse["upper"].tolist() == [0.0, np.inf]  # nine quantiles collapse to one edge
    assert coarse["reference_share"].tolist() == [0.8, 0.2]


def test_psi_rejects_bad_input():
    with pytest.raises(DataError, match="reference scores has 1 NaN"):
        psi([0.1, np.nan], [0.1, 0.2])
    with pytest.raises(DataError, match="current scores is empty"):
        psi([0.1, 0.2], [])
    with pytest.raises(DataError, match="epsilon"):
        psi([0.1, 0.2], [0.1], epsilon=0)


def test_threshold_table_puts_the_configured_ks_optimal_and_base_rate_cuts_side_by_side():
    from vfl.evaluation import roc_curve, threshold_metrics
    from vfl.evaluation.tables import threshold_table

    rng = np.random.default_rng(2)
    y = (rng.random(2000) < 0.2).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=2000) - 1 + 1.5 * y)))
    table = threshold_table(y, s, threshold=0.4).set_index("rule")
    assert list(table.index) == ["configured (0.4)", "KS-optimal", "base rate"]
    at = threshold_metrics(y, s, 0.4)
    assert table.loc["configured (0.4)", "precision"] == at["precision"]
    ks = table.loc["KS-optimal"]
    assert ks["recall"] - ks["false_positive_rate"] == pytest.approx(roc_curve(y, s).ks)
    assert table.loc["base rate", "predicted_positive"] == pytest.approx(y.mean(), abs=1e-3)

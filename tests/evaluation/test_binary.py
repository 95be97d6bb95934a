"""Binary metrics against scikit-learn and against direct computations on small cases."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn import metrics as skm

from vfl.errors import DataError
from vfl.evaluation import (
    binary_metrics,
    brier_score,
    fast_auc_ks,
    ks_binned,
    ks_exact,
    ks_fate,
    log_loss,
    roc_auc,
    roc_curve,
    threshold_metrics,
)


def sample(seed: int, n: int = 2000, decimals: int | None = None):
    """Labels, probabilities (rounded to force ties when asked) and positive weights."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))
    if decimals is not None:
        s = np.round(s, decimals)
    w = rng.uniform(0.1, 3.0, size=n)
    return y, s, w


def brute_ks(y, s, w, strict: bool = False, cuts=None) -> float:
    """max(TPR - FPR) by looping over cuts: positive means s >= cut (or s > cut if strict)."""
    pos, neg = w[y == 1].sum(), w[y == 0].sum()
    best = 0.0
    for t in np.unique(s) if cuts is None else cuts:
        pred = s > t if strict else s >= t
        best = max(best, w[pred & (y == 1)].sum() / pos - w[pred & (y == 0)].sum() / neg)
    return best


@pytest.mark.parametrize("decimals", [None, 2, 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_auc_matches_sklearn_with_ties_and_weights(decimals, weighted):
    y, s, w = sample(seed=decimals or 0, decimals=decimals)
    sw = w if weighted else None
    assert roc_auc(y, s, sw) == pytest.approx(skm.roc_auc_score(y, s, sample_weight=sw), abs=1e-12)
    curve = roc_curve(y, s, sw)
    fpr, tpr, thr = skm.roc_curve(y, s, sample_weight=sw, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr, atol=1e-12)
    np.testing.assert_allclose(curve.tpr, tpr, atol=1e-12)
    np.testing.assert_allclose(curve.thresholds[1:], thr[1:])


@pytest.mark.parametrize("decimals", [None, 2, 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_exact_ks_is_max_tpr_minus_fpr_over_all_thresholds(decimals, weighted):
    y, s, w = sample(seed=10 + (decimals or 0), n=600, decimals=decimals)
    got = ks_exact(y, s, w if weighted else None)
    assert got == pytest.approx(brute_ks(y, s, w if weighted else np.ones_like(s)), abs=1e-12)


def test_exact_ks_equals_two_sample_ks_statistic():
    y, s, _ = sample(seed=3)
    assert ks_exact(y, s) == pytest.approx(ks_2samp(s[y == 1], s[y == 0]).statistic, abs=1e-12)


def test_known_small_case():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == 0.75
    assert ks_exact(y, s) == 0.5
    assert roc_curve(y, s).ks_threshold == 0.8  # TPR 1/2 - FPR 0 at "score >= 0.8"


def test_ties_count_one_half():
    # one positive and one negative at the same score: AUC 1/2, no separation.
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert ks_exact([0, 1], [0.5, 0.5]) == 0.0
    # 2 positives above 2 negatives, plus one tied pair: (4 + 2 + 2*0.5 + 0) / 9 pairs ...
    y = [1, 1, 0, 1, 0, 0]
    s = [0.9, 0.8, 0.7, 0.7, 0.2, 0.1]
    pairs = [(p, n) for p in range(6) if y[p] for n in range(6) if not y[n]]
    direct = sum(1.0 if s[p] > s[n] else 0.5 if s[p] == s[n] else 0.0 for p, n in pairs) / len(
        pairs
    )
    assert roc_auc(y, s) == pytest.approx(direct)


def test_integer_weights_equal_repeated_rows():
    y, s, _ = sample(seed=4, n=300, decimals=2)
    reps = np.random.default_rng(4).integers(0, 4, size=300)
    reps[:2] = 1  # keep both classes
    yr, sr = np.repeat(y, reps), np.repeat(s, reps)
    weighted = binary_metrics(y, s, sample_weight=reps)
    repeated = binary_metrics(yr, sr)
    for key in ("auc", "ks", "ks_binned", "precision", "recall", "f1", "log_loss", "brier"):
        assert weighted[key] == pytest.approx(repeated[key], abs=1e-12), key


@pytest.mark.parametrize(
    "fn",
    [roc_auc, ks_exact, ks_binned, ks_fate, fast_auc_ks, binary_metrics],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("only", [0, 1])
def test_one_class_is_a_clear_error(fn, only):
    with pytest.raises(DataError, match=f"only class {only}.*need both classes"):
        fn([only] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])


def test_one_class_by_weight_is_a_clear_error():
    with pytest.raises(DataError, match="only class 0 .*non-zero weight"):
        roc_auc([0, 1, 0], [0.1, 0.9, 0.3], sample_weight=[1, 0, 1])


@pytest.mark.parametrize(
    ("y", "s", "w", "match"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], None, "must be binary"),
        ([0, 1], [0.1, 0.2, 0.3], None, "2 labels but there are 3"),
        ([0, 1, 1], [0.1, np.nan, 0.3], None, "1 NaN/infinite values .*row 1"),
        ([0, 1, 1], [0.1, 0.2, 0.3], [1, -1, 1], "non-negative"),
        ([0, 1, 1], [0.1, 0.2, 0.3], [1, 1], "2 values but there are 3"),
        ([], [], None, "empty"),
        ([0, 1], [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], None, "one score per row"),
    ],
)
def test_bad_input_raises_data_error(y, s, w, match):
    with pytest.raises(DataError, match=match):
        binary_metrics(y, s, sample_weight=w)


def test_minus_one_plus_one_labels_are_accepted():
    y, s, _ = sample(seed=5, n=200)
    assert binary_metrics(2 * y - 1, s) == binary_metrics(y, s)


def secretflow_binned_ks(y, s, n_bins):
    """SecretFlow's recipe written out: equal-frequency split points, KS at each split."""
    n = len(s)
    splits = np.interp(np.linspace(0, n, n_bins + 1), np.arange(n), np.sort(s))
    return brute_ks(y, s, np.ones(n), strict=True, cuts=splits)


def fate_ks(y, s, n_cuts=100):
    """FATE 1.x KS.compute written out: thresholds at rank int(n*i/100) of descending scores."""
    desc = np.sort(s)[::-1]
    cuts = [desc[int(len(s) * i / n_cuts)] for i in range(n_cuts)]
    return brute_ks(y, s, np.ones(len(s)), strict=True, cuts=cuts)


@pytest.mark.parametrize("decimals", [None, 1])
def test_binned_ks_follows_secretflow_and_fate_recipes(decimals):
    y, s, _ = sample(seed=6, n=1000, decimals=decimals)
    for bins in (5, 10, 20):
        assert ks_binned(y, s, n_bins=bins) == pytest.approx(
            secretflow_binned_ks(y, s, bins), abs=1e-12
        )
    assert ks_fate(y, s) == pytest.approx(fate_ks(y, s), abs=1e-12)
    exact = ks_exact(y, s)
    assert ks_binned(y, s) <= exact + 1e-12 and ks_fate(y, s) <= exact + 1e-12
    if decimals is None:  # fine bins on continuous scores come close to the exact KS
        assert exact - ks_fate(y, s) < 0.02


def test_binned_ks_small_case_by_hand():
    # scores 1..8, positives at 5, 7, 8; exact KS 0.8 at "score >= 5" (TPR 1, FPR 1/5).
    y = [0, 0, 0, 0, 1, 0, 1, 1]
    s = [1, 2, 3, 4, 5, 6, 7, 8]
    assert ks_exact(y, s) == pytest.approx(0.8)
    # 4 bins: interp(linspace(0, 8, 5), arange(8), s) = splits 1, 3, 5, 7, 8 (positive: s > split)
    # split 3: TPR 1 - FPR 2/5 = 0.6 (best); split 5: 2/3 - 1/5; split 7: 1/3
    assert ks_binned(y, s, n_bins=4) == pytest.approx(0.6)
    # 2 bins: splits 1, 5, 8 -> max(1 - 4/5, 2/3 - 1/5) = 7/15
    assert ks_binned(y, s, n_bins=2) == pytest.approx(7 / 15)
    # 1 bin: splits 1, 8 -> 0.2
    assert ks_binned(y, s, n_bins=1) == pytest.approx(0.2)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("weighted", [False, True])
def test_threshold_metrics_match_sklearn(threshold, weighted):
    y, s, w = sample(seed=7, decimals=2)
    sw = w if weighted else None
    pred = (s >= threshold).astype(int)
    got = threshold_metrics(y, s, threshold, sw)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, sample_weight=sw))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, sample_weight=sw))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, sample_weight=sw))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred, sample_weight=sw))
    (tn, fp), (fn, tp) = skm.confusion_matrix(y, pred, sample_weight=sw)
    assert got["confusion_matrix"] == pytest.approx({"tn": tn, "fp": fp, "fn": fn, "tp": tp})


def test_threshold_above_every_score_gives_zero_precision_not_nan():
    got = threshold_metrics([0, 1, 1], [0.1, 0.2, 0.3], threshold=0.9)
    assert got["precision"] == 0.0 and got["recall"] == 0.0 and got["f1"] == 0.0
    assert got["confusion_matrix"] == {"tn": 1.0, "fp": 0.0, "fn": 2.0, "tp": 0.0}


@pytest.mark.parametrize("weighted", [False, True])
def test_log_loss_and_brier_match_sklearn(weighted):
    y, s, w = sample(seed=8)
    sw = w if weighted else None
    assert log_loss(y, s, sw) == pytest.approx(skm.log_loss(y, s, sample_weight=sw), rel=1e-12)
    assert brier_score(y, s, sw) == pytest.approx(
        skm.brier_score_loss(y, s, sample_weight=sw), rel=1e-12
    )


def test_log_loss_clips_certain_mistakes():
    assert log_loss([1, 0], [0.0, 1.0]) == pytest.approx(-np.log(np.finfo(float).eps))


def test_margins_are_not_probabilities():
    y, s, _ = sample(seed=9)
    margin = np.log(s / (1 - s))
    metrics = binary_metrics(y, margin)
    assert metrics["log_loss"] is None and metrics["brier"] is None
    assert metrics["auc"] == pytest.approx(binary_metrics(y, s)["auc"])  # rank metrics unchanged
    with pytest.raises(DataError, match=r"probabilities in \[0, 1\]"):
        log_loss(y, margin)


def test_binary_metrics_is_json_serializable_and_complete():
    y, s, w = sample(seed=11)
    metrics = binary_metrics(y, s, sample_weight=w, threshold=0.4)
    decoded = json.loads(json.dumps(metrics))
    for key in (
        "auc",
        "gini",
        "ks",
        "ks_binned",
        "ks_fate",
        "precision",
        "recall",
        "f1",
        "confusion_matrix",
        "log_loss",
        "brier",
        "positive_rate",
    ):
        assert key in decoded, key
    assert decoded["threshold"] == 0.4 and decoded["weighted"] is True
    assert decoded["gini"] == pytest.approx(2 * decoded["auc"] - 1)
    assert decoded["positives"] == pytest.approx(w[y == 1].sum())


def test_fast_auc_ks_agrees_and_is_fast():
    y, s, _ = sample(seed=12, n=200_000)
    start = time.perf_counter()
    auc, ks = fast_auc_ks(y, s)
    elapsed = time.perf_counter() - start
    assert auc == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert ks == pytest.approx(ks_2samp(s[y == 1], s[y == 0]).statistic, abs=1e-12)
    assert elapsed < 2.0, f"fast_auc_ks took {elapsed:.2f}s on 200k rows"


def test_bootstrap_ci_holds_the_estimate_is_seeded_and_narrows_with_more_rows():
    from vfl.evaluation import roc_curve
    from vfl.evaluation.binary import bootstrap_ci

    rng = np.random.default_rng(4)

    def sample(n):
        y = (rng.random(n) < 0.3).astype(int)
        return y, rng.normal(size=n) + 1.2 * y

    y, s = sample(400)
    ci = bootstrap_ci(y, s, n_resamples=300)
    curve = roc_curve(y, s)
    assert ci["auc"][0] < curve.auc < ci["auc"][1] and ci["ks"][0] < curve.ks < ci["ks"][1]
    assert bootstrap_ci(y, s, n_resamples=300) == ci  # seeded
    y_big, s_big = sample(8000)
    big = bootstrap_ci(y_big, s_big, n_resamples=300)
    assert big["auc"][1] - big["auc"][0] < (ci["auc"][1] - ci["auc"][0]) / 2

"""Binary classification metrics on the guest: labels are the guest's, scores the joint model's.

Every curve metric is computed from one weighted ROC pass (sort once, cumulative weighted
positives/negatives at each distinct score), so ties are handled exactly the way
scikit-learn handles them and sample weights come for free.

KS comes in three flavours, because credit teams compare numbers across tools:

- `ks_exact`: max(TPR - FPR) over every distinct score threshold (the supremum distance
  between the score distributions of the positives and the negatives).
- `ks_binned`: SecretFlow's `biclassification_eval` KS: equal-frequency split points of the
  scores (`bucket_num`, default 10), KS read only at the split points.
- `ks_fate`: FATE 1.x `KS.compute`: 100 thresholds at the ranks 0, n/100, 2n/100, ... of the
  scores sorted descending, positive means score > threshold.
Both binned versions only look at a subset of the exact thresholds, so they never exceed
`ks_exact` (the tests check this).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vfl.algorithms.label_checks import check_binary, is_probability
from vfl.algorithms.validation import RocCurve as RocCurve  # the ROC pass training validates with
from vfl.algorithms.validation import fast_auc_ks as fast_auc_ks
from vfl.algorithms.validation import roc, roc_curve
from vfl.errors import DataError


def roc_auc(y_true: Any, scores: Any, sample_weight: Any = None) -> float:
    return roc_curve(y_true, scores, sample_weight).auc


def ks_exact(y_true: Any, scores: Any, sample_weight: Any = None) -> float:
    """max(TPR - FPR) over all thresholds (weighted)."""
    return roc_curve(y_true, scores, sample_weight).ks


def _ks_at_cuts(y: np.ndarray, s: np.ndarray, w: np.ndarray, cuts: np.ndarray) -> float:
    """max(TPR - FPR) where 'predicted positive' means score > cut, over the given cuts."""
    order = np.argsort(s, kind="mergesort")
    s_asc = s[order]
    pos_le = np.r_[0.0, np.cumsum((w * y)[order])]  # weight of positives with score <= s_asc[i-1]
    neg_le = np.r_[0.0, np.cumsum((w * (1.0 - y))[order])]
    k = np.searchsorted(s_asc, cuts, side="right")
    tpr = 1.0 - pos_le[k] / pos_le[-1]
    fpr = 1.0 - neg_le[k] / neg_le[-1]
    return float(max(0.0, (tpr - fpr).max()))


def ks_binned(y_true: Any, scores: Any, n_bins: int = 10, sample_weight: Any = None) -> float:
    """KS as SecretFlow's `biclassification_eval` reports it (equal-frequency bins).

    Split points: `np.interp(linspace(0, n, n_bins + 1), arange(n), sorted(scores))`, i.e.
    equal-count bins on the unweighted scores; KS is read at each split point
    (positive means score > split). Weights only change the counts. SecretFlow takes
    |TPR - FPR|; we keep the sign like `ks_exact`, the same for any better-than-random model.
    """
    if n_bins < 1:
        raise DataError(f"n_bins must be >= 1, got {n_bins}")
    y, s, w = check_binary(y_true, scores, sample_weight)
    n = s.shape[0]
    cuts = np.interp(np.linspace(0, n, n_bins + 1), np.arange(n), np.sort(s))
    return _ks_at_cuts(y, s, w, cuts)


def ks_fate(y_true: Any, scores: Any, n_cuts: int = 100, sample_weight: Any = None) -> float:
    """KS as FATE 1.x `KS.compute` reports it (rank cuts).

    Scores sorted descending; cut i (i = 0..n_cuts-1) is the score at rank int(n * i / n_cuts);
    positive means score > cut. With ties at a cut the whole tie group is negative, so FATE's
    KS can be well below the exact one on coarse (e.g. tree-leaf) scores.
    """
    if n_cuts < 1:
        raise DataError(f"n_cuts must be >= 1, got {n_cuts}")
    y, s, w = check_binary(y_true, scores, sample_weight)
    n = s.shape[0]
    desc = np.sort(s)[::-1]
    cuts = desc[(n * np.arange(n_cuts)) // n_cuts]
    return _ks_at_cuts(y, s, w, cuts)


def threshold_metrics(
    y_true: Any, scores: Any, threshold: float = 0.5, sample_weight: Any = None
) -> dict[str, Any]:
    """Confusion matrix, precision, recall, F1, accuracy for 'predicted positive = score >= threshold'.

    Undefined ratios (no predicted positives, say) are 0.0, as scikit-learn's zero_division
    default gives them.
    """
    y, s, w = check_binary(y_true, scores, sample_weight, need_both_classes=False)
    pred = s >= threshold
    tp = float(w[pred & (y == 1)].sum())
    fp = float(w[pred & (y == 0)].sum())
    fn = float(w[~pred & (y == 1)].sum())
    tn = float(w[~pred & (y == 0)].sum())
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def _check_proba(s: np.ndarray, metric: str) -> None:
    if not is_probability(s):
        raise DataError(
            f"{metric} needs probabilities in [0, 1]; scores range over "
            f"[{s.min():.4g}, {s.max():.4g}] (pass predict_proba output, not a margin)"
        )


def log_loss(y_true: Any, scores: Any, sample_weight: Any = None) -> float:
    """Weighted mean cross-entropy; p clipped to [eps, 1 - eps] (float64 eps, as scikit-learn)."""
    y, s, w = check_binary(y_true, scores, sample_weight, need_both_classes=False)
    _check_proba(s, "log loss")
    eps = np.finfo(np.float64).eps
    p = np.clip(s, eps, 1 - eps)
    losses = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(np.average(losses, weights=w))


def brier_score(y_true: Any, scores: Any, sample_weight: Any = None) -> float:
    """Weighted mean squared error between probability and label."""
    y, s, w = check_binary(y_true, scores, sample_weight, need_both_classes=False)
    _check_proba(s, "Brier score")
    return float(np.average((s - y) ** 2, weights=w))


def binary_metrics(
    y_true: Any,
    scores: Any,
    sample_weight: Any = None,
    threshold: float = 0.5,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Every scalar binary metric in one JSON-serializable dict.

    Parameters
    ----------
    y_true : array-like
        0/1 labels.
    scores : array-like
        One score per row (a probability, a margin or a credit score).
    sample_weight : array-like or None, default None
        Row weights.
    threshold : float, default 0.5
        The cut-off of the threshold metrics (precision, recall, ...).
    n_bins : int, default 10
        Bins of the binned KS.

    Returns
    -------
    dict
        AUC, KS and the other metrics; `log_loss` and `brier` are None when the scores are
        not probabilities, rather than a number computed on a wrong scale.

    Raises
    ------
    DataError
        Labels or scores are invalid (lengths, non-binary labels, non-finite values).
    """
    y, s, w = check_binary(y_true, scores, sample_weight)
    curve = roc(y, s, w)
    proba = is_probability(s)
    pos, neg = float(w[y == 1].sum()), float(w[y == 0].sum())
    auc = curve.auc
    return {
        "n_rows": int(s.shape[0]),
        "weighted": sample_weight is not None,
        "positives": pos,
        "negatives": neg,
        "positive_rate": pos / (pos + neg),
        "auc": auc,
        "gini": 2 * auc - 1,
        "ks": curve.ks,
        "ks_threshold": curve.ks_threshold,
        "ks_binned": ks_binned(y, s, n_bins=n_bins, sample_weight=w),
        "ks_binned_bins": n_bins,
        "ks_fate": ks_fate(y, s, sample_weight=w),
        **threshold_metrics(y, s, threshold=threshold, sample_weight=w),
        "log_loss": log_loss(y, s, w) if proba else None,
        "brier": brier_score(y, s, w) if proba else None,
    }


def bootstrap_ci(
    y_true: Any, scores: Any, sample_weight: Any = None, n_resamples: int = 200,
    level: float = 0.95, seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of AUC and KS: ``{"auc": (lo, hi), "ks": ...}``.

    Rows are drawn with replacement `n_resamples` times (weights travel with their rows); a
    resample holding one class only is drawn again. Seeded: the same data give the same
    interval.
    """
    if not 0 < level < 1 or n_resamples < 10:
        raise DataError(f"bootstrap needs 0 < level < 1 and >= 10 resamples, got {level}, {n_resamples}")
    y, s, w = check_binary(y_true, scores, sample_weight)
    rng = np.random.default_rng(seed)
    aucs: list[float] = []
    kss: list[float] = []
    while len(aucs) < n_resamples:
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue
        curve = roc(y[rows], s[rows], w[rows])
        aucs.append(curve.auc)
        kss.append(curve.ks)
    tail = (1 - level) / 2 * 100
    return {name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
            for name, v in (("auc", aucs), ("ks", kss))}

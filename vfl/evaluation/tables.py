"""Binned views of a score: lift/gain by score bands, calibration, population stability,
and the metrics at three cut-offs.

All return pandas DataFrames (one row per bin) so they print, plot and serialize alike.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from vfl.algorithms.label_checks import check_binary, check_scores, check_weights, is_probability
from vfl.errors import DataError
from vfl.evaluation.binary import roc, threshold_metrics

PSI_EPSILON = 1e-4


def _check_n_bins(n_bins: int) -> None:
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer, got {n_bins!r}")


def lift_table(
    y_true: Any, scores: Any, n_bins: int = 10, sample_weight: Any = None
) -> pd.DataFrame:
    """Lift and gain by score bands of equal weight (deciles by default), best scores first.

    A band holds whole tie groups: a group goes to the band containing the midpoint of its
    cumulative weight, so bands are as equal as ties allow and an empty band is dropped.
    Columns: `lift` is the band's positive rate over the overall rate, `gain` the share of
    all positives captured down to this band, `cum_lift` = gain / cum_population, `ks` the
    cumulative positive share minus the cumulative negative share.
    """
    _check_n_bins(n_bins)
    y, s, w = check_binary(y_true, scores, sample_weight)
    order = np.argsort(-s, kind="mergesort")
    s, y, w = s[order], y[order], w[order]
    total = w.sum()
    cum = np.cumsum(w)
    group_start = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    group_id = np.cumsum(np.r_[0, np.diff(s) != 0])
    group_end_cum = np.r_[cum[group_start[1:] - 1], cum[-1]]
    group_begin_cum = np.r_[0.0, group_end_cum[:-1]]
    mid = (group_begin_cum + group_end_cum) / 2 / total
    band = np.minimum((mid * n_bins).astype(int), n_bins - 1)[group_id]

    frame = pd.DataFrame({"band": band, "score": s, "y": y, "w": w, "wy": w * y})
    g = frame.groupby("band", sort=True)
    out = pd.DataFrame(
        {
            "min_score": g["score"].min(),
            "max_score": g["score"].max(),
            "rows": g.size(),
            "weight": g["w"].sum(),
            "positives": g["wy"].sum(),
        }
    ).reset_index(drop=True)
    out.insert(0, "bin", np.arange(1, len(out) + 1))
    out["negatives"] = out["weight"] - out["positives"]
    pos_total, neg_total = out["positives"].sum(), out["negatives"].sum()
    overall_rate = pos_total / total
    out["positive_rate"] = out["positives"] / out["weight"]
    out["lift"] = out["positive_rate"] / overall_rate
    out["cum_population"] = out["weight"].cumsum() / total
    out["gain"] = out["positives"].cumsum() / pos_total
    out["cum_lift"] = out["gain"] / out["cum_population"]
    out["ks"] = out["gain"] - out["negatives"].cumsum() / neg_total
    return out


def calibration_table(
    y_true: Any,
    scores: Any,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
    sample_weight: Any = None,
) -> pd.DataFrame:
    """Mean predicted probability vs observed positive rate per probability bin.

    Bins as scikit-learn's `calibration_curve`: equal-width on [0, 1] ("uniform") or score
    quantiles ("quantile"); a bin is (lower, upper] except the first, and empty bins are
    dropped. With weights, both means are weighted.
    """
    _check_n_bins(n_bins)
    y, s, w = check_binary(y_true, scores, sample_weight, need_both_classes=False)
    if not is_probability(s):
        raise DataError(
            f"calibration needs probabilities in [0, 1]; scores range over [{s.min():.4g}, {s.max():.4g}]"
        )
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(s, np.linspace(0, 100, n_bins + 1))
    else:
        raise DataError(f"calibration strategy must be 'uniform' or 'quantile', got {strategy!r}")
    ids = np.searchsorted(edges[1:-1], s)
    weight = np.bincount(ids, weights=w, minlength=n_bins)
    keep = np.bincount(ids, minlength=n_bins) > 0
    return pd.DataFrame(
        {
            "lower": edges[:-1][keep],
            "upper": edges[1:][keep],
            "rows": np.bincount(ids, minlength=n_bins)[keep],
            "weight": weight[keep],
            "mean_predicted": np.bincount(ids, weights=w * s, minlength=n_bins)[keep]
            / weight[keep],
            "observed_rate": np.bincount(ids, weights=w * y, minlength=n_bins)[keep] / weight[keep],
        }
    )


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Inverse of the weighted empirical CDF (lowest x whose cumulative share reaches q)."""
    order = np.argsort(x, kind="mergesort")
    xs, cw = x[order], np.cumsum(w[order])
    idx = np.searchsorted(cw / cw[-1], q, side="left")
    return xs[np.minimum(idx, xs.shape[0] - 1)]


def psi_table(
    reference: Any,
    current: Any,
    n_bins: int = 10,
    reference_weight: Any = None,
    current_weight: Any = None,
    epsilon: float = PSI_EPSILON,
) -> pd.DataFrame:
    """Population stability per bin between a reference score sample and a current one.

    Bins come from the reference: its (weighted) quantiles at 1/n_bins, 2/n_bins, ...,
    duplicates and an edge at the reference maximum removed (ties can merge bins); a bin is
    (lower, upper], the outer ones open.
    Shares below `epsilon` (1e-4 by default: an empty bin) are raised to `epsilon` before
    the log, so one empty bin adds a large but finite term instead of infinity.
    PSI contribution = (current - reference) * ln(current / reference).
    """
    _check_n_bins(n_bins)
    ref = check_scores(reference, "reference scores")
    cur = check_scores(current, "current scores")
    w_ref = check_weights(reference_weight, ref.shape[0], "reference_weight")
    w_cur = check_weights(current_weight, cur.shape[0], "current_weight")
    if not 0 < epsilon < 1:
        raise DataError(f"epsilon must be in (0, 1), got {epsilon}")
    inner = np.unique(_weighted_quantiles(ref, w_ref, np.arange(1, n_bins) / n_bins))
    inner = inner[inner < ref.max()]  # an edge at the maximum would leave the top bin empty
    k = inner.shape[0] + 1
    ref_count = np.bincount(np.searchsorted(inner, ref, side="left"), weights=w_ref, minlength=k)
    cur_count = np.bincount(np.searchsorted(inner, cur, side="left"), weights=w_cur, minlength=k)
    ref_share, cur_share = ref_count / ref_count.sum(), cur_count / cur_count.sum()
    r, c = np.maximum(ref_share, epsilon), np.maximum(cur_share, epsilon)
    return pd.DataFrame(
        {
            "bin": np.arange(1, k + 1),
            "lower": np.r_[-np.inf, inner],
            "upper": np.r_[inner, np.inf],
            "reference_share": ref_share,
            "current_share": cur_share,
            "psi": (c - r) * np.log(c / r),
        }
    )


def psi(
    reference: Any,
    current: Any,
    n_bins: int = 10,
    reference_weight: Any = None,
    current_weight: Any = None,
    epsilon: float = PSI_EPSILON,
) -> float:
    """Population stability index (see `psi_table`). Rule of thumb: < 0.1 stable, > 0.25 shifted."""
    table = psi_table(reference, current, n_bins, reference_weight, current_weight, epsilon)
    return float(table["psi"].sum())


def threshold_table(
    y_true: Any, scores: Any, threshold: float = 0.5, sample_weight: Any = None
) -> pd.DataFrame:
    """Three cut-offs side by side, each 'predicted positive = score >= threshold':

    the configured `threshold`; the KS-optimal one (where TPR - FPR is largest); and the
    base-rate one (the score quantile that predicts as many positives as there are, by weight).
    Columns: rule, threshold, predicted_positive (share of the population), precision, recall,
    false_positive_rate, f1, accuracy.
    """
    y, s, w = check_binary(y_true, scores, sample_weight)
    base_rate = float(w[y == 1].sum() / w.sum())
    cuts = [
        (f"configured ({threshold:g})", float(threshold)),
        ("KS-optimal", roc(y, s, w).ks_threshold),
        ("base rate", float(_weighted_quantiles(s, w, np.array([1 - base_rate]))[0])),
    ]
    rows = []
    for rule, cut in cuts:
        m = threshold_metrics(y, s, cut, w)
        cm = m["confusion_matrix"]
        rows.append({
            "rule": rule, "threshold": cut, "predicted_positive": float(w[s >= cut].sum() / w.sum()),
            "precision": m["precision"], "recall": m["recall"],
            "false_positive_rate": cm["fp"] / (cm["fp"] + cm["tn"]) if cm["fp"] + cm["tn"] else 0.0,
            "f1": m["f1"], "accuracy": m["accuracy"],
        })
    return pd.DataFrame(rows)

"""Checks shared by every metric: turn user input into clean float arrays or raise DataError.

Metrics run on the guest, on labels it owns and on joint scores from the federated predict
path; bad input must fail here with a message that says what is wrong, never as a NaN
metric further down.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vfl.errors import DataError

BinaryInput = tuple[np.ndarray, np.ndarray, np.ndarray]


def check_weights(sample_weight: Any, n: int, what: str = "sample_weight") -> np.ndarray:
    """Weights as float64 (all ones when None); finite, non-negative, positive total."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64).ravel()
    if w.shape[0] != n:
        raise DataError(f"{what} has {w.shape[0]} values but there are {n} rows")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError(f"{what} must be finite and non-negative")
    if w.sum() <= 0:
        raise DataError(f"{what} sums to zero: nothing to evaluate")
    return w


def check_scores(scores: Any, what: str = "scores") -> np.ndarray:
    """A 1-D float64 score vector without NaN or infinity."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric: {exc}") from None
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1:
        raise DataError(f"{what} must be one score per row, got shape {s.shape}")
    if s.shape[0] == 0:
        raise DataError(f"{what} is empty: nothing to evaluate")
    bad = ~np.isfinite(s)
    if bad.any():
        raise DataError(
            f"{what} has {int(bad.sum())} NaN/infinite values (first at row {int(np.argmax(bad))})"
        )
    return s


def check_binary_labels(y_true: Any, n: int, what: str = "y_true") -> np.ndarray:
    """Labels as 0.0/1.0. Accepts {0, 1}, booleans and the {-1, +1} coding HE-LR uses."""
    try:
        y = np.asarray(y_true, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric 0/1 labels: {exc}") from None
    if y.shape[0] != n:
        raise DataError(f"{what} has {y.shape[0]} labels but there are {n} scores")
    if np.isnan(y).any():
        raise DataError(f"{what} has {int(np.isnan(y).sum())} missing labels")
    values = set(np.unique(y).tolist())
    if values <= {0.0, 1.0}:
        return y
    if values <= {-1.0, 1.0}:
        return (y > 0).astype(np.float64)
    shown = sorted(values)[:5]
    raise DataError(f"{what} must be binary (0/1 or -1/+1), found values {shown}")


def check_binary(
    y_true: Any, scores: Any, sample_weight: Any = None, *, need_both_classes: bool = True
) -> BinaryInput:
    """(y in {0,1}, scores, weights) as float64 arrays of one length.

    With `need_both_classes`, a sample with only one class (or all weight on one class) is
    rejected: AUC, KS, lift and recall are undefined there, and a silent 0.5 or NaN would
    look like a real result.
    """
    s = check_scores(scores)
    y = check_binary_labels(y_true, s.shape[0])
    w = check_weights(sample_weight, s.shape[0])
    if need_both_classes:
        pos = float(w[y == 1].sum())
        neg = float(w[y == 0].sum())
        if pos <= 0 or neg <= 0:
            only = 1 if pos > 0 else 0
            raise DataError(
                f"y_true has only class {only} ({s.shape[0]} rows"
                f"{' with non-zero weight' if sample_weight is not None else ''}); "
                "AUC, KS, lift and recall need both classes: evaluate on a sample with "
                "positives and negatives"
            )
    return y, s, w


def is_probability(scores: np.ndarray) -> bool:
    """True when every score lies in [0, 1], so log loss, Brier and calibration make sense."""
    return bool(scores.min() >= 0.0 and scores.max() <= 1.0)

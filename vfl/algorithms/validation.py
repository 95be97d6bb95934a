"""One validation path for training: the ROC pass behind AUC and KS, and the per-epoch
validation record with its early-stopping decision.

The guest of every algorithm hands its joint validation scores and its labels to
`EpochValidator.update` once per epoch; the validator's state goes into the epoch's
checkpoint so a resumed run decides exactly as an uninterrupted one. `vfl.evaluation` builds
its curves and tables on the same ROC pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vfl.algorithms.label_checks import check_binary
from vfl.errors import ConfigError


@dataclass(frozen=True)
class RocCurve:
    """Weighted ROC points, one per distinct score (descending), starting at (0, 0).

    `thresholds[i]` is the score cut for point i: predicted positive means score >= it
    (`inf` for the first point, where nothing is predicted positive).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    positives: float
    negatives: float

    @property
    def auc(self) -> float:
        """Trapezoidal area; a tie group is a diagonal segment, i.e. counts one half."""
        return float(np.trapezoid(self.tpr, self.fpr))

    @property
    def population_share(self) -> np.ndarray:
        """Share of the (weighted) population predicted positive at each point."""
        return (self.tpr * self.positives + self.fpr * self.negatives) / (
            self.positives + self.negatives
        )

    @property
    def ks_curve(self) -> np.ndarray:
        return self.tpr - self.fpr

    @property
    def ks(self) -> float:
        return float(self.ks_curve.max())

    @property
    def ks_threshold(self) -> float:
        """The score cut where KS is reached (predict positive at score >= it)."""
        return float(self.thresholds[int(np.argmax(self.ks_curve))])


def roc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> RocCurve:
    """ROC from checked arrays (see `inputs.check_binary`)."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted, w_sorted = s[order], y[order], w[order]
    tp = np.cumsum(w_sorted * y_sorted)
    fp = np.cumsum(w_sorted * (1.0 - y_sorted))
    group_end = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.shape[0] - 1]
    tps, fps = tp[group_end], fp[group_end]
    return RocCurve(
        fpr=np.r_[0.0, fps / fps[-1]],
        tpr=np.r_[0.0, tps / tps[-1]],
        thresholds=np.r_[np.inf, s_sorted[group_end]],
        positives=float(tps[-1]),
        negatives=float(fps[-1]),
    )


def roc_curve(y_true: Any, scores: Any, sample_weight: Any = None) -> RocCurve:
    return roc(*check_binary(y_true, scores, sample_weight))


def fast_auc_ks(y_true: Any, scores: Any, sample_weight: Any = None) -> tuple[float, float]:
    """(AUC, exact KS) in one O(n log n) pass: the per-epoch validation metric for training."""
    curve = roc_curve(y_true, scores, sample_weight)
    return curve.auc, curve.ks


VALIDATION_METRICS = ("auc", "ks")


class EpochValidator:
    """Tracks validation AUC and KS per epoch and says when to stop.

    Stops when `metric` has not improved by more than `min_delta` for `patience`
    consecutive epochs (`patience=None`: never stops, just records).
    """

    def __init__(self, metric: str = "auc", patience: int | None = None, min_delta: float = 0.0):
        if metric not in VALIDATION_METRICS:
            raise ConfigError(
                f"validation metric must be one of {VALIDATION_METRICS}, got {metric!r}"
            )
        if patience is not None and patience < 1:
            raise ConfigError(f"validation patience must be >= 1 or None, got {patience}")
        self.metric = metric
        self.patience = patience
        self.min_delta = min_delta
        self.history_: list[dict[str, float]] = []
        self.best_epoch_: int | None = None
        self.best_score_ = float("-inf")
        self.improved_ = False

    def update(
        self, epoch: int, y_true: Any, scores: Any, sample_weight: Any = None
    ) -> dict[str, float]:
        """Record this epoch's metrics; returns {"epoch", "auc", "ks"}."""
        auc, ks = fast_auc_ks(y_true, scores, sample_weight)
        record = {"epoch": epoch, "auc": auc, "ks": ks}
        self.history_.append(record)
        self.improved_ = record[self.metric] > self.best_score_ + self.min_delta
        if self.improved_:
            self.best_score_ = record[self.metric]
            self.best_epoch_ = epoch
        return record

    def state(self) -> dict[str, Any]:
        """What an epoch's checkpoint keeps of the validator (JSON values)."""
        return {"history": self.history_, "best_epoch": self.best_epoch_,
                "best_score": None if self.best_epoch_ is None else self.best_score_}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's `state()`."""
        self.history_ = list(state["history"])
        self.best_epoch_ = state["best_epoch"]
        self.best_score_ = float("-inf") if state["best_score"] is None else float(state["best_score"])

    @property
    def should_stop(self) -> bool:
        if self.patience is None or self.best_epoch_ is None:
            return False
        since_best = sum(1 for r in self.history_ if r["epoch"] > self.best_epoch_)
        return since_best >= self.patience

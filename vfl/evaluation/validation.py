"""Per-epoch validation for training loops: AUC/KS history and early stopping.

Training code (HE-LR, split NN) gets joint validation scores each epoch through the
federated predict path and hands them, with the guest's labels, to `EpochValidator.update`.
"""

from __future__ import annotations

from typing import Any

from vfl.errors import ConfigError
from vfl.evaluation.binary import fast_auc_ks

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

    def update(
        self, epoch: int, y_true: Any, scores: Any, sample_weight: Any = None
    ) -> dict[str, float]:
        """Record this epoch's metrics; returns {"epoch", "auc", "ks"}."""
        auc, ks = fast_auc_ks(y_true, scores, sample_weight)
        record = {"epoch": epoch, "auc": auc, "ks": ks}
        self.history_.append(record)
        if record[self.metric] > self.best_score_ + self.min_delta:
            self.best_score_ = record[self.metric]
            self.best_epoch_ = epoch
        return record

    @property
    def should_stop(self) -> bool:
        if self.patience is None or self.best_epoch_ is None:
            return False
        since_best = sum(1 for r in self.history_ if r["epoch"] > self.best_epoch_)
        return since_best >= self.patience

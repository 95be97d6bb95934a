"""Per-epoch validation metrics and early stopping."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vfl.algorithms.validation import EpochValidator
from vfl.errors import ConfigError, DataError


def scores_with_quality(quality: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(500) < 0.3).astype(int)
    return y, rng.normal(size=500) + quality * y


def test_history_matches_sklearn_and_tracks_the_best_epoch():
    v = EpochValidator(metric="auc")
    for epoch, quality in enumerate([0.2, 1.0, 0.5]):
        y, s = scores_with_quality(quality)
        record = v.update(epoch, y, s)
        assert record["auc"] == pytest.approx(roc_auc_score(y, s))
    assert [r["epoch"] for r in v.history_] == [0, 1, 2]
    assert v.best_epoch_ == 1 and v.best_score_ == v.history_[1]["auc"]
    assert not v.should_stop  # no patience: only records


def test_stops_after_patience_epochs_without_improvement():
    v = EpochValidator(metric="ks", patience=2, min_delta=0.01)
    stops = []
    for epoch, quality in enumerate([0.5, 1.0, 1.0, 1.0, 1.0]):
        v.update(epoch, *scores_with_quality(quality))
        stops.append(v.should_stop)
    # epoch 1 is best; 2 and 3 are equal (no gain beyond min_delta) -> stop after epoch 3
    assert v.best_epoch_ == 1 and stops == [False, False, False, True, True]


def test_bad_settings_and_data():
    with pytest.raises(ConfigError, match="validation metric"):
        EpochValidator(metric="f1")
    with pytest.raises(ConfigError, match="patience"):
        EpochValidator(patience=0)
    with pytest.raises(DataError, match="only class 1"):
        EpochValidator().update(0, [1, 1], [0.2, 0.4])

"""Multi-class accuracy / F1 / log loss against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from vfl.errors import DataError
from vfl.evaluation import multiclass_metrics


def sample(seed: int, n: int = 600, k: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba, rng.uniform(0.2, 2.0, size=n)


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_sklearn(weighted):
    y, p, w = sample(seed=1)
    sw = w if weighted else None
    pred = p.argmax(axis=1)
    got = multiclass_metrics(y, p, sample_weight=sw)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred, sample_weight=sw))
    assert got["f1_macro"] == pytest.approx(
        skm.f1_score(y, pred, average="macro", sample_weight=sw)
    )
    assert got["f1_weighted"] == pytest.approx(
        skm.f1_score(y, pred, average="weighted", sample_weight=sw)
    )
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p, sample_weight=sw), rel=1e-10)
    np.testing.assert_allclose(
        got["confusion_matrix"], skm.confusion_matrix(y, pred, sample_weight=sw), atol=1e-9
    )


def test_named_classes_and_a_class_never_seen():
    # class "c" is neither true nor predicted: F1 0 for it, like sklearn with labels=[a, b, c].
    y = np.array(["a", "b", "a", "b"])
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1]])
    got = multiclass_metrics(y, p, classes=["a", "b", "c"])
    pred = np.array(["a", "b", "b", "b"])
    expected = skm.f1_score(y, pred, labels=["a", "b", "c"], average="macro", zero_division=0)
    assert got["f1_macro"] == pytest.approx(expected)
    assert got["accuracy"] == 0.75 and got["classes"] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("y", "p", "classes", "match"),
    [
        ([0, 1], [0.2, 0.8], None, "matrix"),
        ([0, 3], [[0.5, 0.5], [0.4, 0.6]], None, r"labels \[3\] that are not in classes"),
        ([0, 1, 1], [[0.5, 0.5], [0.4, 0.6]], None, "3 labels but proba has 2 rows"),
        ([0, 1], [[0.5, 0.5], [0.4, np.nan]], None, "finite probabilities"),
        ([0, 1], [[0.5, 0.5], [0.4, 0.6]], ["x"], "1 labels but proba has 2 columns"),
    ],
)
def test_bad_input(y, p, classes, match):
    with pytest.raises(DataError, match=match):
        multiclass_metrics(y, p, classes=classes)

"""Multi-class metrics from a probability matrix (one column per class, rows sum to ~1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vfl.algorithms.label_checks import check_weights
from vfl.errors import DataError


def multiclass_metrics(
    y_true: Any, proba: Any, classes: Any = None, sample_weight: Any = None
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, log loss and confusion matrix (rows: true, cols: predicted).

    `classes[j]` is the label of column j (default 0..k-1, as `predict_proba` orders
    `classes_`). Macro F1 averages over all k classes, counting 0.0 for a class that is
    never predicted nor present (scikit-learn's zero_division=0).
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise DataError(f"proba must be an (n_rows, n_classes >= 2) matrix, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise DataError("proba must hold finite probabilities in [0, 1]")
    n, k = p.shape
    labels = np.arange(k) if classes is None else np.asarray(classes)
    if labels.shape != (k,):
        raise DataError(f"classes has {labels.shape[0]} labels but proba has {k} columns")
    y = np.asarray(y_true).ravel()
    if y.shape[0] != n:
        raise DataError(f"y_true has {y.shape[0]} labels but proba has {n} rows")
    index = {label: j for j, label in enumerate(labels.tolist())}
    unknown = sorted({v for v in y.tolist() if v not in index}, key=str)
    if unknown:
        raise DataError(
            f"y_true has labels {unknown[:5]} that are not in classes {labels.tolist()}"
        )
    w = check_weights(sample_weight, n)
    t = np.array([index[v] for v in y.tolist()])
    pred = p.argmax(axis=1)

    cm = np.zeros((k, k))
    np.add.at(cm, (t, pred), w)
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)

    eps = np.finfo(np.float64).eps
    p_true = np.clip(p[np.arange(n), t] / p.sum(axis=1), eps, 1 - eps)
    return {
        "n_rows": n,
        "n_classes": k,
        "classes": labels.tolist(),
        "accuracy": float(tp.sum() / w.sum()),
        "f1_macro": float(f1.mean()),
        "f1_weighted": float(np.average(f1, weights=support)) if support.sum() > 0 else 0.0,
        "f1_per_class": f1.tolist(),
        "log_loss": float(np.average(-np.log(p_true), weights=w)),
        "confusion_matrix": cm.tolist(),
    }

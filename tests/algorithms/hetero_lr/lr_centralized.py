"""Centralized plaintext reference of HE logistic regression (for fidelity checks).

Trains on the joined features with exactly the federated model's math: the Taylor-approximated
loss (gradient X^T s (z/4 - y/2)), the same mini-batches (`epoch_batches` with the same seed),
the same optimizer, penalty and convergence rule. A federated run must match it up to the
fixed-point precision of the encrypted arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vfl.algorithms.guest_classifier import sigmoid
from vfl.algorithms.optim import Optimizer, OptimizerConfig, auto_batch_size, epoch_batches


class TaylorLogisticRegression:
    """Mini-batch logistic regression on the Taylor loss, all features in one place.

    `class_weight` accepts None or "balanced" (as the federated estimator); early stopping
    is not reproduced here.
    """

    def __init__(
        self, epochs: int = 10, batch_size: int | None = None, learning_rate: float = 0.15,
        lr_schedule: str = "constant", decay: float = 0.0, optimizer: str = "sgd",
        penalty: str | None = "l2", alpha: float = 0.0, class_weight: str | None = None,
        tol: float | None = 1e-4, random_state: int = 0,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.decay = decay
        self.optimizer = optimizer
        self.penalty = penalty
        self.alpha = alpha
        self.class_weight = class_weight
        self.tol = tol
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> TaylorLogisticRegression:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).ravel()
        self.classes_ = np.unique(y)
        y_pm = np.where(y == self.classes_[1], 1.0, -1.0)
        s = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if self.class_weight == "balanced":
            pos = float(np.mean(y_pm > 0))
            s = s * np.where(y_pm > 0, 0.5 / pos, 0.5 / (1 - pos))
        Xa = np.hstack([X, np.ones((len(X), 1))])
        config = OptimizerConfig(
            name=self.optimizer, learning_rate=self.learning_rate, lr_schedule=self.lr_schedule,
            decay=self.decay, penalty=self.penalty, alpha=self.alpha,
        )
        opt = Optimizer(config, Xa.shape[1], np.r_[np.ones(X.shape[1]), 0.0])
        w = np.zeros(Xa.shape[1])
        self.n_iter_ = 0
        for epoch in range(self.epochs):
            before = w.copy()
            batch = self.batch_size or auto_batch_size(len(X))
            for rows in epoch_batches(len(X), batch, self.random_state, epoch):
                sb = s[rows] / s[rows].sum()
                d = sb * (Xa[rows] @ w / 4 - y_pm[rows] / 2)
                w = opt.step(w, Xa[rows].T @ d, epoch)
            self.n_iter_ += 1
            if self.tol is not None and np.max(np.abs(w - before)) < self.tol:
                break
        self.coef_, self.intercept_ = w[:-1], float(w[-1])
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])

"""What the guest's estimators of a raw-score model share: probabilities and labels.

HE logistic regression and SecureBoost both end in one joint raw score (log-odds) per row,
``decision_function(ctx, X)``; the logistic link turns it into probabilities, its sign into
labels. `GuestClassifierMixin` derives both from ``decision_function`` and ``classes_``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vfl.parties.context import Context


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic link, ``1 / (1 + exp(-z))``, written with tanh so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class GuestClassifierMixin:
    """`predict_proba` and `predict` of a guest's binary classifier from its `decision_function`.

    The estimator provides ``decision_function(ctx, X)`` (one raw score per row; the hosts
    take part) and ``classes_`` (the two labels, ``classes_[1]`` the positive class). Put the
    mixin before ``BaseEstimator`` among the bases, as scikit-learn's own mixins go.
    """

    classes_: np.ndarray
    decision_function: Callable[[Context, Any], np.ndarray]

    def predict_proba(self, ctx: Context, X: Any) -> np.ndarray:
        """Class probabilities from the joint score (see `decision_function`).

        Parameters
        ----------
        ctx : Context
            The guest's context of a job or simulation with the hosts.
        X : array-like or pandas.DataFrame
            The guest's features of the rows to score.

        Returns
        -------
        numpy.ndarray
            (n, 2) probabilities of ``classes_[0]`` and ``classes_[1]``.
        """
        p = sigmoid(self.decision_function(ctx, X))
        return np.column_stack([1 - p, p])

    def predict(self, ctx: Context, X: Any) -> np.ndarray:
        """Class labels: ``classes_[1]`` where the joint score is positive.

        Parameters
        ----------
        ctx : Context
            The guest's context of a job or simulation with the hosts.
        X : array-like or pandas.DataFrame
            The guest's features of the rows to score.

        Returns
        -------
        numpy.ndarray
            One label per row.
        """
        return np.where(self.decision_function(ctx, X) > 0, self.classes_[1], self.classes_[0])

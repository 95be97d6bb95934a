"""Training algorithms: HE logistic regression, SecureBoost and the split neural network (torch).

The estimators load on first use, so importing a module of this package does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vfl.lazy import lazy_exports

if TYPE_CHECKING:
    from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression
    from vfl.algorithms.secureboost.estimator import SecureBoostClassifier
    from vfl.algorithms.split_nn.estimator import SplitNNClassifier, SplitNNHost
    from vfl.algorithms.split_nn.nn_spec import mlp

_EXPORTS = {
    "HeteroLogisticRegression": "vfl.algorithms.hetero_lr.estimator",
    "SecureBoostClassifier": "vfl.algorithms.secureboost.estimator",
    "SplitNNClassifier": "vfl.algorithms.split_nn.estimator",
    "SplitNNHost": "vfl.algorithms.split_nn.estimator",
    "mlp": "vfl.algorithms.split_nn.nn_spec",
}
__all__ = ["HeteroLogisticRegression", "SecureBoostClassifier", "SplitNNClassifier", "SplitNNHost", "mlp"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

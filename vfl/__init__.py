"""vfl: vertical federated learning on tabular data across organizations.

What a notebook needs is importable from here: the estimators, preprocessing, the job runners
and config loaders, simulation, tables and evaluation. Everything but the errors loads on first
use (torch, scikit-learn and pandas are not imported by ``import vfl``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vfl.errors import (
    CodecError,
    ConfigError,
    DataError,
    PeerError,
    PeerTimeoutError,
    PolicyError,
    ProtocolError,
    VflError,
)
from vfl.lazy import lazy_exports

if TYPE_CHECKING:
    from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression
    from vfl.algorithms.secureboost.estimator import SecureBoostClassifier
    from vfl.algorithms.split_nn.estimator import SplitNNClassifier, SplitNNHost
    from vfl.algorithms.split_nn.nn_spec import mlp
    from vfl.config import JobConfig, load_job_config
    from vfl.connectors import load_dataset, read_table, write_table
    from vfl.evaluation import binary_metrics, evaluate_scores
    from vfl.jobs import JobOutcome
    from vfl.parties import Context, simulate
    from vfl.parties.config import PartyConfig, load_party_config
    from vfl.preprocessing.preprocessor import PartyPreprocessor, PreprocessingConfig
    from vfl.runner import run_federated, run_simulated

__version__ = "0.1.0"

_EXPORTS = {
    "HeteroLogisticRegression": "vfl.algorithms.hetero_lr.estimator",
    "SecureBoostClassifier": "vfl.algorithms.secureboost.estimator",
    "SplitNNClassifier": "vfl.algorithms.split_nn.estimator",
    "SplitNNHost": "vfl.algorithms.split_nn.estimator",
    "mlp": "vfl.algorithms.split_nn.nn_spec",
    "PartyPreprocessor": "vfl.preprocessing.preprocessor",
    "PreprocessingConfig": "vfl.preprocessing.preprocessor",
    "JobConfig": "vfl.config",
    "PartyConfig": "vfl.parties.config",
    "load_job_config": "vfl.config",
    "load_party_config": "vfl.parties.config",
    "JobOutcome": "vfl.jobs",
    "run_simulated": "vfl.runner",
    "run_federated": "vfl.runner",
    "Context": "vfl.parties",
    "simulate": "vfl.parties",
    "read_table": "vfl.connectors",
    "write_table": "vfl.connectors",
    "load_dataset": "vfl.connectors",
    "evaluate_scores": "vfl.evaluation",
    "binary_metrics": "vfl.evaluation",
}

__all__ = [
    "CodecError",
    "ConfigError",
    "DataError",
    "PeerError",
    "PeerTimeoutError",
    "PolicyError",
    "ProtocolError",
    "VflError",
    "__version__",
    "HeteroLogisticRegression",
    "SecureBoostClassifier",
    "SplitNNClassifier",
    "SplitNNHost",
    "mlp",
    "PartyPreprocessor",
    "PreprocessingConfig",
    "JobConfig",
    "PartyConfig",
    "load_job_config",
    "load_party_config",
    "JobOutcome",
    "run_simulated",
    "run_federated",
    "Context",
    "simulate",
    "read_table",
    "write_table",
    "load_dataset",
    "evaluate_scores",
    "binary_metrics",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

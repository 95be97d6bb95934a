"""A job's training parameters, checked when the job is loaded, before any party does work.

Each algorithm's schema is its own estimator: the keyword parameters of its constructor (an
unknown key is refused with the closest known one) and the checks the estimator itself makes
of their types and ranges. Data-dependent checks (batch sizes against the features) stay in
the protocol.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from vfl.errors import ConfigError, did_you_mean

WHERE = "steps.train.params"  # where split_nn's own messages say a module spec is wrong
INTERNAL = ("self", "checkpoint_dir", "guest_bottom", "top")  # set by the job, never by params
SPLIT_NN_KEYS = ("guest_bottom", "top", "init_seed")  # `from_params` builds these from mappings


def check_train_params(algorithm: str, params: dict[str, Any]) -> None:
    """Raise ConfigError naming the key for an unknown key or a bad value (the caller adds
    where the params are: ``job.yaml: steps.train.params: ...``)."""
    if algorithm == "hetero_lr":
        from vfl.algorithms.hetero_lr import HeteroLogisticRegression

        _known(params, _keywords(HeteroLogisticRegression.__init__))
        HeteroLogisticRegression(**params).check_params()
    elif algorithm == "split_nn":
        from vfl.algorithms.split_nn import SplitNNClassifier

        _known(params, [*_keywords(SplitNNClassifier.__init__), *SPLIT_NN_KEYS])
        SplitNNClassifier.from_params(params, n_features=1, where=WHERE).check_params()
    else:
        raise ConfigError(f"steps.train.algorithm: '{algorithm}' is not available")


def _keywords(init: Callable[..., Any]) -> list[str]:
    return [p for p in inspect.signature(init).parameters if p not in INTERNAL]


def _known(params: dict[str, Any], keys: Iterable[str]) -> None:
    known = list(keys)
    for key in params:
        if key not in known:
            raise ConfigError(f"unknown parameter {key!r}{did_you_mean(key, known)} "
                              f"(known: {', '.join(sorted(known))})")

"""HE logistic regression as a job's train step (`vfl.algorithms.hetero_lr.estimator` does the work).

The guest's hyper-parameters are the keyword parameters of `HeteroLogisticRegression` (an
unknown key is refused with the closest known one, values are checked by the estimator); a
host's only setting is whether its policy allows the insecure mode.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from vfl.algorithms.hetero_lr import estimator as hetero_lr
from vfl.algorithms.hetero_lr.model import LRGuestPart, LRHostPart
from vfl.algorithms.registry import HostSettings, known_keys, register_algorithm
from vfl.errors import ConfigError
from vfl.parties.context import Context

INTERNAL = ("self", "checkpoint_dir")  # set by the job, never by params


@register_algorithm("hetero_lr")
class HeteroLR:
    """Paillier-encrypted logistic regression across a guest and its hosts."""

    accepts_key_bits = True

    def check_params(self, params: dict[str, Any]) -> None:
        keys = inspect.signature(hetero_lr.HeteroLogisticRegression.__init__).parameters
        known_keys(params, [k for k in keys if k not in INTERNAL])
        hetero_lr.HeteroLogisticRegression(**params).check_params()

    def guest_fit(self, ctx: Context, params: dict[str, Any], X: np.ndarray, y: np.ndarray,
                  checkpoint_dir: Path) -> hetero_lr.HeteroLogisticRegression:
        try:
            estimator = hetero_lr.HeteroLogisticRegression(**params, checkpoint_dir=checkpoint_dir)
        except TypeError as exc:
            raise ConfigError(f"steps.train.params: {exc}") from None
        return estimator.fit(ctx, X, y)

    def host_fit(self, ctx: Context, X: np.ndarray, settings: HostSettings,
                 checkpoint_dir: Path) -> LRHostPart:
        return hetero_lr.host_fit(ctx, X, checkpoint_dir=checkpoint_dir,
                                  policy_allows_insecure=settings.allow_insecure)

    def host_predict(self, ctx: Context, X: np.ndarray, part: LRHostPart) -> None:
        hetero_lr.host_predict(ctx, X, part)

    def part_type(self, role: str) -> type[LRGuestPart] | type[LRHostPart]:
        return LRGuestPart if role == "guest" else LRHostPart

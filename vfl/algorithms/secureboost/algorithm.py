"""SecureBoost as a job's train step (`vfl.algorithms.secureboost.estimator` does the work).

The guest's hyper-parameters are the keyword parameters of `SecureBoostClassifier` (an
unknown key is refused with the closest known one, values are checked by the estimator); a
host brings only its data and checkpoint directory (SecureBoost has no insecure mode).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from vfl.algorithms.registry import HostSettings, known_keys, register_algorithm
from vfl.algorithms.secureboost.estimator import SecureBoostClassifier, host_fit, host_predict
from vfl.algorithms.secureboost.model import SBGuestPart, SBHostPart
from vfl.errors import ConfigError
from vfl.parties.context import Context

INTERNAL = ("self", "checkpoint_dir")  # set by the job, never by params


@register_algorithm("secureboost")
class SecureBoost:
    """Gradient-boosted trees across a guest and its hosts, Paillier-encrypted histograms."""

    accepts_key_bits = True

    def check_params(self, params: dict[str, Any]) -> None:
        keys = inspect.signature(SecureBoostClassifier.__init__).parameters
        known_keys(params, [k for k in keys if k not in INTERNAL])
        SecureBoostClassifier(**params).check_params()

    def guest_fit(self, ctx: Context, params: dict[str, Any], X: np.ndarray, y: np.ndarray,
                  checkpoint_dir: Path) -> SecureBoostClassifier:
        try:
            estimator = SecureBoostClassifier(**params, checkpoint_dir=checkpoint_dir)
        except TypeError as exc:
            raise ConfigError(f"steps.train.params: {exc}") from None
        return estimator.fit(ctx, X, y)

    def host_fit(self, ctx: Context, X: np.ndarray, settings: HostSettings, checkpoint_dir: Path) -> SBHostPart:
        return host_fit(ctx, X, checkpoint_dir=checkpoint_dir)

    def host_predict(self, ctx: Context, X: np.ndarray, part: SBHostPart) -> None:
        host_predict(ctx, X, part)

    def part_type(self, role: str) -> type[SBGuestPart] | type[SBHostPart]:
        return SBGuestPart if role == "guest" else SBHostPart

"""The split neural network as a job's train step (`vfl.algorithms.split_nn.estimator` does the work).

torch is imported only when a job checks, trains or serves a split NN. The guest's
hyper-parameters are `SplitNNClassifier`'s keyword parameters plus the module mappings
`from_params` builds; each host's bottom model comes from its own party config.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from vfl.algorithms.registry import HostSettings, known_keys, register_algorithm
from vfl.parties.context import Context

WHERE = "steps.train.params"  # where split_nn's own messages say a module spec is wrong
INTERNAL = ("self", "checkpoint_dir", "guest_bottom", "top")  # set by the job, never by params
MODULE_KEYS = ("guest_bottom", "top", "init_seed")  # `from_params` builds these from mappings


@register_algorithm("split_nn")
class SplitNN:
    """Bottom models per party, an interactive layer, a top model on the guest."""

    accepts_key_bits = False

    def check_params(self, params: dict[str, Any]) -> None:
        from vfl.algorithms.split_nn.estimator import SplitNNClassifier

        keys = inspect.signature(SplitNNClassifier.__init__).parameters
        known_keys(params, [*(k for k in keys if k not in INTERNAL), *MODULE_KEYS])
        SplitNNClassifier.from_params(params, n_features=1, where=WHERE).check_params()

    def guest_fit(self, ctx: Context, params: dict[str, Any], X: np.ndarray, y: np.ndarray,
                  checkpoint_dir: Path) -> Any:
        from vfl.algorithms.split_nn.estimator import SplitNNClassifier

        return SplitNNClassifier.from_params(params, X.shape[1], checkpoint_dir=checkpoint_dir).fit(ctx, X, y)

    def host_fit(self, ctx: Context, X: np.ndarray, settings: HostSettings, checkpoint_dir: Path) -> Any:
        from vfl.algorithms.split_nn import estimator as split_nn

        return split_nn.host_fit(ctx, X, settings.model, settings.where, checkpoint_dir=checkpoint_dir,
                                 allow_plain=settings.allow_insecure)

    def host_predict(self, ctx: Context, X: np.ndarray, part: Any) -> None:
        from vfl.algorithms.split_nn import estimator as split_nn

        split_nn.host_predict(ctx, X, part)

    def part_type(self, role: str) -> Any:
        from vfl.algorithms.split_nn.parts import SplitNNGuestPart, SplitNNHostPart

        return SplitNNGuestPart if role == "guest" else SplitNNHostPart

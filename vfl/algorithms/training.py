"""The train step of a job: one entry per side for every algorithm a job can name.

The guest's hyper-parameters come from the job spec; the host's settings (its own bottom
model, whether its policy allows insecure modes) come from its own party config, never from
the guest. The split NN (and torch) is imported only when a job trains or serves one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vfl.algorithms import hetero_lr
from vfl.errors import ConfigError
from vfl.parties.context import Context
from vfl.parties.runtime import PartyRuntime

if TYPE_CHECKING:  # the job config sits above the algorithms; the step is only annotated here
    from vfl.config import TrainStep


@dataclass
class GuestModel:
    """The guest's trained estimator and its servable part."""

    algorithm: str
    estimator: Any

    @property
    def part(self) -> Any:
        return self.estimator.part_

    def predict_proba(self, ctx: Context, X: np.ndarray) -> np.ndarray:
        """Positive-class probability per row; the hosts contribute their parts."""
        return np.asarray(self.estimator.predict_proba(ctx, X))[:, 1]


@dataclass
class HostModel:
    """A host's trained part; `predict` answers the guest's predict request."""

    algorithm: str
    part: Any

    def predict(self, ctx: Context, X: np.ndarray) -> None:
        if self.algorithm == "hetero_lr":
            hetero_lr.host_predict(ctx, X, self.part)
        elif self.algorithm == "split_nn":
            from vfl.algorithms import split_nn

            split_nn.host_predict(ctx, X, self.part)


def guest_fit(
    ctx: Context, step: TrainStep, X: np.ndarray, y: np.ndarray, checkpoint_dir: Path
) -> GuestModel:
    if step.algorithm == "hetero_lr":
        try:
            estimator = hetero_lr.HeteroLogisticRegression(**step.params, checkpoint_dir=checkpoint_dir)
        except TypeError as exc:
            raise ConfigError(f"steps.train.params: {exc}") from None
        return GuestModel(step.algorithm, estimator.fit(ctx, X, y))
    if step.algorithm == "split_nn":
        from vfl.algorithms import split_nn

        nn_guest = split_nn.SplitNNClassifier.from_params(
            step.params, X.shape[1], checkpoint_dir=checkpoint_dir)
        return GuestModel(step.algorithm, nn_guest.fit(ctx, X, y))
    raise ConfigError(f"steps.train.algorithm: '{step.algorithm}' is not available")


def host_fit(
    ctx: Context, step: TrainStep, X: np.ndarray, party: PartyRuntime, checkpoint_dir: Path
) -> HostModel:
    if step.algorithm == "hetero_lr":
        part = hetero_lr.host_fit(
            ctx, X, checkpoint_dir=checkpoint_dir,
            policy_allows_insecure=party.config.policy.allow_insecure,
        )
        return HostModel(step.algorithm, part)
    if step.algorithm == "split_nn":
        from vfl.algorithms import split_nn

        # the bottom model is the host's own (its party config), never the guest's choice
        nn_part = split_nn.host_fit(
            ctx, X, party.config.models.get("split_nn"),
            f"party '{party.name}' config: models.split_nn", checkpoint_dir=checkpoint_dir,
            allow_plain=party.config.policy.allow_insecure,
        )
        return HostModel(step.algorithm, nn_part)
    raise ConfigError(f"steps.train.algorithm: '{step.algorithm}' is not available")

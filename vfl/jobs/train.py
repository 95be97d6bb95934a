"""The train stage of a job: one entry per side, for whichever registered algorithm it names.

The guest's hyper-parameters come from the job spec; the host's settings (its own model,
whether its policy allows insecure modes) come from its own party config, never from the
guest. Each algorithm is looked up in `vfl.algorithms.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfl.algorithms import registry
from vfl.algorithms.registry import GuestEstimator, HostSettings
from vfl.config import TrainStep
from vfl.parties.context import Context
from vfl.parties.runtime import PartyRuntime


@dataclass
class GuestModel:
    """The guest's trained estimator and its servable part."""

    algorithm: str
    estimator: GuestEstimator

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
        registry.get(self.algorithm).host_predict(ctx, X, self.part)


def guest_fit(
    ctx: Context, step: TrainStep, X: np.ndarray, y: np.ndarray, checkpoint_dir: Path
) -> GuestModel:
    """Train the job's algorithm as the guest with the job's params."""
    algorithm = registry.get(step.algorithm)
    return GuestModel(step.algorithm, algorithm.guest_fit(ctx, step.params, X, y, checkpoint_dir))


def host_fit(
    ctx: Context, step: TrainStep, X: np.ndarray, party: PartyRuntime, checkpoint_dir: Path
) -> HostModel:
    """Train the job's algorithm as a host with this party's own settings and policy."""
    settings = HostSettings(
        model=party.config.models.get(step.algorithm),
        where=f"party '{party.name}' config: models.{step.algorithm}",
        allow_insecure=party.config.policy.allow_insecure,
    )
    part = registry.get(step.algorithm).host_fit(ctx, X, settings, checkpoint_dir)
    return HostModel(step.algorithm, part)

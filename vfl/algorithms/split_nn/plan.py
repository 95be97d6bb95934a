"""What the guest tells the hosts before split NN training.

The plan carries only schedule facts (mode, epochs, batch size, seed, interactive layer width
and learning rate, row counts): each host's bottom model and optimizer are its own business.
A host answers with the width of its bottom model and, in he mode, its public key.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from vfl.algorithms import session_start
from vfl.algorithms.session import HE
from vfl.algorithms.session_start import PlanReply

PLAIN_BANNER = ("split NN in PLAIN mode: host activations A and gradients dL/dA cross in the "
                "clear; the guest learns the host's bottom outputs, the host can infer labels")


class SplitNNReply(PlanReply):
    """A host's answer: the width k of its bottom model's output, its public key (he mode)."""

    bottom_width: int = Field(ge=1, le=1024)
    key: dict[str, Any] | None


class TrainingPlan(session_start.TrainingPlan):
    """The split NN plan: the session's fields and the interactive layer's schedule."""

    title: ClassVar[str] = "split NN"
    insecure_banner: ClassVar[str] = PLAIN_BANNER
    reply: ClassVar[type[PlanReply]] = SplitNNReply

    batch_size: int = Field(ge=1, le=1 << 16)
    seed: int = Field(ge=0, le=1 << 63)
    interactive_width: int = Field(ge=1, le=1024)
    interactive_lr: float = Field(gt=0.0, le=100.0, allow_inf_nan=False)
    interactive_momentum: float = Field(ge=0.0, le=0.999, allow_inf_nan=False)
    noise_scale: float = Field(ge=0.0, le=1e6, allow_inf_nan=False)

    @model_validator(mode="after")
    def _noise_in_plain_mode_only(self) -> TrainingPlan:
        if self.mode == HE and self.noise_scale != 0.0:
            raise ValueError("'noise_scale' applies to plain mode only")
        return self


def batch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Row order of an epoch; both parties derive it from the plan, nothing is sent."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    order = batch_order(n, seed, epoch)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]

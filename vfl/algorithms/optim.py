"""Optimizers, penalties and learning-rate schedules that one party applies to its own weights.

In HE logistic regression every party updates only its own slice of the weights with its own
(decrypted) gradient, so everything here is element-wise: running it per party gives exactly
the same weights as running it once on the concatenated vector (what the centralized
reference in `tests/algorithms/hetero_lr/lr_centralized.py` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vfl.errors import ConfigError, did_you_mean

OPTIMIZERS = ("sgd", "momentum", "adam")
PENALTIES = ("l1", "l2", None)
SCHEDULES = ("constant", "inverse_time", "inverse_sqrt")


@dataclass(frozen=True)
class OptimizerConfig:
    """Everything a party needs to update its weights; sent by the guest in the training plan."""

    name: str = "sgd"
    learning_rate: float = 0.1
    lr_schedule: str = "constant"
    decay: float = 0.0
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    penalty: str | None = "l2"
    alpha: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}"
                              f"{did_you_mean(self.name, OPTIMIZERS)}")
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}"
                              f"{did_you_mean(self.lr_schedule, SCHEDULES)}")
        if self.penalty not in PENALTIES:
            raise ConfigError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        positive = ("learning_rate", "eps")
        unit = ("momentum", "beta1", "beta2")
        for field in positive + unit + ("decay", "alpha"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                raise ConfigError(f"{field} must be a finite number, got {value!r}")
            if value < 0 or (field in positive and value == 0) or (field in unit and value >= 1):
                raise ConfigError(f"{field}={value!r} is out of range")

    def to_wire(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_wire(cls, d: Any) -> OptimizerConfig:
        """Validate a received config (types and ranges): raises ConfigError naming the field."""
        if not isinstance(d, dict) or set(d) != set(cls.__dataclass_fields__):
            raise ConfigError(f"optimizer config must have fields {sorted(cls.__dataclass_fields__)}")
        for key in ("name", "lr_schedule"):
            if not isinstance(d[key], str):
                raise ConfigError(f"optimizer field {key!r} must be a string")
        if d["penalty"] is not None and not isinstance(d["penalty"], str):
            raise ConfigError("optimizer field 'penalty' must be a string or None")
        return cls(**d)

    def learning_rate_at(self, epoch: int) -> float:
        """Per-epoch schedule (epoch counts from 0)."""
        if self.lr_schedule == "inverse_time":
            return self.learning_rate / (1.0 + self.decay * epoch)
        if self.lr_schedule == "inverse_sqrt":
            return self.learning_rate / np.sqrt(1.0 + epoch)
        return self.learning_rate


class Optimizer:
    """One party's optimizer state for its weight vector.

    `penalized` masks which weights the penalty applies to (not the intercept). L2 is added to
    the gradient; L1 is applied as a proximal soft-threshold after the step, so weights can
    reach exactly zero.
    """

    def __init__(self, config: OptimizerConfig, size: int, penalized: np.ndarray | None = None):
        self.config = config
        self.penalized = np.ones(size) if penalized is None else penalized.astype(np.float64)
        self.t = 0
        self.m = np.zeros(size)
        self.v = np.zeros(size)

    def step(self, w: np.ndarray, grad: np.ndarray, epoch: int) -> np.ndarray:
        c = self.config
        lr = c.learning_rate_at(epoch)
        g = grad + (c.alpha * self.penalized * w if c.penalty == "l2" else 0.0)
        self.t += 1
        if c.name == "sgd":
            update = g
        elif c.name == "momentum":
            self.m = c.momentum * self.m + g
            update = self.m
        else:
            self.m = c.beta1 * self.m + (1 - c.beta1) * g
            self.v = c.beta2 * self.v + (1 - c.beta2) * g * g
            m_hat = self.m / (1 - c.beta1**self.t)
            v_hat = self.v / (1 - c.beta2**self.t)
            update = m_hat / (np.sqrt(v_hat) + c.eps)
        w = w - lr * update
        if c.penalty == "l1":
            shrink = lr * c.alpha * self.penalized
            w = np.sign(w) * np.maximum(np.abs(w) - shrink, 0.0)
        return w

    def state(self) -> dict[str, np.ndarray]:
        return {"opt_t": np.array(self.t), "opt_m": self.m, "opt_v": self.v}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.t = int(arrays["opt_t"])
        self.m = np.array(arrays["opt_m"], dtype=np.float64)
        self.v = np.array(arrays["opt_v"], dtype=np.float64)


def epoch_batches(n_rows: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The row indices of every mini-batch of `epoch`: both sides derive the same ones.

    The permutation comes from a numpy Generator seeded with (seed, epoch), so a resumed job
    (or the centralized reference) reproduces every batch without replaying earlier epochs.
    A last batch shorter than half a batch joins the one before it: a party that gets its
    gradient X^T (s d) of a batch with no more rows than it has features can solve it for
    the residuals d it must not see (`smallest_batch` is what the parties check).
    """
    order = np.random.default_rng([seed, epoch]).permutation(n_rows)
    starts = list(range(0, n_rows, batch_size))
    if len(starts) > 1 and n_rows - starts[-1] < batch_size / 2:
        starts.pop()
    return [order[a:b] for a, b in zip(starts, [*starts[1:], n_rows], strict=True)]


AUTO_BATCHES = 16  # mini-batches per epoch aimed at when the batch size is not given
AUTO_BATCH_ROWS = (64, 1024)  # its bounds: big enough to hide residuals, small enough to learn
FEW_BATCHES = 4  # fewer gradient steps per epoch than this underfit small data


def auto_batch_size(n_rows: int) -> int:
    """The batch size when none is given: about AUTO_BATCHES steps per epoch, within
    AUTO_BATCH_ROWS (800 rows: 64 rows per batch, 13 steps; 30,000 rows: 1,024 rows, 29)."""
    low, high = AUTO_BATCH_ROWS
    return int(min(high, max(low, -(-n_rows // AUTO_BATCHES))))


def smallest_batch(n_rows: int, batch_size: int) -> int:
    """The fewest rows any mini-batch of `epoch_batches(n_rows, batch_size, ...)` has."""
    if n_rows <= batch_size:
        return n_rows
    tail = n_rows % batch_size
    return tail if tail >= batch_size / 2 else batch_size

"""One boosted tree on the guest: the split gain, the leaf weights, and the nodes grown so far.

XGBoost's second-order objective (Chen and Guestrin 2016): with a node's sums of gradients
G and hessians H, its best weight is ``-G / (H + lambda)`` and a split into (G_L, H_L) and
(G_R, H_R) gains ``G_L^2/(H_L + lambda) + G_R^2/(H_R + lambda) - G^2/(H + lambda)``. A split
is taken when its gain exceeds ``gamma`` and both children keep a hessian sum of at least
``min_child_weight``; leaves are scaled by the learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vfl.algorithms.secureboost.model import LEAF

MIN_GAIN = 1e-6  # as XGBoost's kRtEps: a smaller gain is rounding noise


@dataclass(frozen=True)
class SplitRule:
    """The hyper-parameters of the gain and the leaf weights."""

    learning_rate: float
    reg_lambda: float
    gamma: float
    min_child_weight: float

    def gains(self, gl: np.ndarray, hl: np.ndarray, g: float, h: float) -> np.ndarray:
        """Gain of every candidate split with left sums (gl, hl) of a node with sums (g, h);
        -inf where the split is not allowed."""
        gr, hr = g - gl, h - hl
        lam = self.reg_lambda
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = gl * gl / (hl + lam) + gr * gr / (hr + lam) - g * g / (h + lam)
        ok = (hl >= self.min_child_weight) & (hr >= self.min_child_weight) & np.isfinite(gain)
        ok &= gain > max(self.gamma, MIN_GAIN)
        return np.where(ok, gain, -np.inf)

    def leaf(self, g: float, h: float) -> float:
        return float(-self.learning_rate * g / (h + self.reg_lambda))


@dataclass
class Tree:
    """The nodes of one tree, in the order they were made (node 0 is the root)."""

    owner: list[int] = field(default_factory=list)
    feature: list[int] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    missing_left: list[bool] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    gain: list[float] = field(default_factory=list)

    def leaf(self, value: float) -> int:
        """A new leaf; returns its node id."""
        for name, v in (("owner", LEAF), ("feature", -1), ("threshold", 0.0), ("missing_left", False),
                        ("left", -1), ("right", -1), ("value", value), ("gain", 0.0)):
            getattr(self, name).append(v)
        return len(self.owner) - 1

    def split(self, node: int, owner: int, feature: int, threshold: float, missing_left: bool,
              gain: float, left: int, right: int) -> None:
        """Turn leaf `node` into a split on `feature` (a host's column for a host's split)."""
        self.owner[node], self.feature[node], self.threshold[node] = owner, feature, threshold
        self.missing_left[node], self.gain[node] = missing_left, gain
        self.left[node], self.right[node], self.value[node] = left, right, 0.0

    def __len__(self) -> int:
        return len(self.owner)

"""What the guest tells the hosts before split NN training.

The plan carries only schedule facts (mode, epochs, batch size, seed, interactive layer width
and learning rate, row counts): each host's bottom model and optimizer are its own business.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vfl.algorithms.session import HE, MODES
from vfl.errors import ProtocolError

PLAIN_BANNER = ("split NN in PLAIN mode: host activations A and gradients dL/dA cross in the "
                "clear; the guest learns the host's bottom outputs, the host can infer labels")


@dataclass(frozen=True)
class TrainingPlan:
    mode: str
    epochs: int
    batch_size: int
    seed: int
    interactive_width: int
    interactive_lr: float
    interactive_momentum: float
    noise_scale: float
    n_rows: int
    n_val_rows: int
    early_stopping: bool

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, d: object) -> TrainingPlan:
        """Validate every field of a received plan (ProtocolError names the field)."""
        if not isinstance(d, dict) or set(d) != set(cls.__dataclass_fields__):
            raise ProtocolError(f"split NN plan: expected fields {sorted(cls.__dataclass_fields__)}")
        ints = {"epochs": (1, 100_000), "batch_size": (1, 1 << 16), "seed": (0, 1 << 63),
                "interactive_width": (1, 1024), "n_rows": (1, 1 << 40), "n_val_rows": (0, 1 << 40)}
        for name, (lo, hi) in ints.items():
            v = d[name]
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ProtocolError(f"split NN plan: field '{name}' must be an int in [{lo}, {hi}]")
        floats = {"interactive_lr": (0.0, 100.0), "interactive_momentum": (0.0, 0.999),
                  "noise_scale": (0.0, 1e6)}
        for name, (flo, fhi) in floats.items():
            f = d[name]
            if not isinstance(f, float) or not math.isfinite(f) or not flo <= f <= fhi:
                raise ProtocolError(f"split NN plan: field '{name}' must be a float in [{flo}, {fhi}]")
        if d["interactive_lr"] <= 0:
            raise ProtocolError("split NN plan: field 'interactive_lr' must be positive")
        if d["mode"] not in MODES:
            raise ProtocolError(f"split NN plan: field 'mode' must be one of {MODES}")
        if not isinstance(d["early_stopping"], bool):
            raise ProtocolError("split NN plan: field 'early_stopping' must be a bool")
        if d["mode"] == HE and d["noise_scale"] != 0.0:
            raise ProtocolError("split NN plan: 'noise_scale' applies to plain mode only")
        return cls(**d)

    def fingerprint(self) -> str:
        """Identifies a training run for resuming: everything but the number of epochs."""
        fields = {k: v for k, v in asdict(self).items() if k != "epochs"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def batch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Row order of an epoch; both parties derive it from the plan, nothing is sent."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    order = batch_order(n, seed, epoch)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]

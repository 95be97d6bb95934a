"""A tiny third algorithm, registered from outside the package: plaintext federated logistic
regression by full-batch gradient descent (each host sends X_h w_h, the guest answers with the
residuals in the clear). For tests of the algorithm registry and of the training session only:
it is not private, so a host trains it only when its policy allows insecure modes.

It is what the session skeleton asks of an algorithm and nothing more: a plan (`Plan`), an
epoch function per role and its model parts; the skeleton sends and checks the plan, applies
the host's policy, agrees on the epoch to resume from, decides and checkpoints every epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from vfl.algorithms import contributions
from vfl.algorithms.registry import HostSettings, known_keys, register_algorithm
from vfl.algorithms.session import INSECURE, EpochOutcome
from vfl.algorithms.session_start import HostPolicy, TrainingPlan, guest_start, host_start
from vfl.errors import ConfigError, ProtocolError
from vfl.parties.context import Context

NAME = "fed_linear"
PARAMS = {"epochs": 50, "learning_rate": 0.5}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _vector(value: Any, n: int, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.shape != (n,) or not np.all(np.isfinite(value)):
        raise ProtocolError(f"'{what}' must be {n} finite values")
    return value.astype(np.float64)


class Plan(TrainingPlan):
    """The session's fields and the step size."""

    title: ClassVar[str] = NAME
    insecure_banner: ClassVar[str] = f"{NAME} sends partial scores and residuals in the clear; for tests only"

    learning_rate: float = Field(gt=0.0, le=100.0, allow_inf_nan=False)


@dataclass
class HostPart:
    coef: np.ndarray

    def contribution(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) @ self.coef)[:, None]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "host.json").write_text(json.dumps({"coef": self.coef.tolist()}))

    @classmethod
    def load(cls, directory: Path) -> HostPart:
        return cls(np.asarray(json.loads((directory / "host.json").read_text())["coef"]))


@dataclass
class GuestPart:
    coef: np.ndarray
    intercept: float

    def predict_proba(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray:
        z = np.asarray(X, dtype=np.float64) @ self.coef + self.intercept
        for c in contributions:
            z = z + np.asarray(c, dtype=np.float64)[:, 0]
        return _sigmoid(z)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        body = {"coef": self.coef.tolist(), "intercept": self.intercept}
        (directory / "guest.json").write_text(json.dumps(body))

    @classmethod
    def load(cls, directory: Path) -> GuestPart:
        body = json.loads((directory / "guest.json").read_text())
        return cls(np.asarray(body["coef"]), float(body["intercept"]))


class Estimator:
    """The guest's side: trains with the hosts, then scores with their contributions."""

    key_bits = 1024  # for the job's encrypted IV step; training itself is plaintext

    def __init__(self, epochs: int, learning_rate: float) -> None:
        self.epochs, self.learning_rate = epochs, learning_rate

    def fit(self, ctx: Context, X: np.ndarray, y: np.ndarray, checkpoint_dir: Path | None = None) -> Estimator:
        n = len(X)
        plan = Plan.make(mode=INSECURE, epochs=self.epochs, learning_rate=float(self.learning_rate), n_rows=n,
                         n_val_rows=0, early_stopping=False)
        session = guest_start(ctx, plan, checkpoint_dir)
        Xa = np.c_[X, np.ones(n)]
        w = np.zeros(Xa.shape[1]) if session.state is None else session.state["w"]

        def epoch(ectx: Context, e: int) -> EpochOutcome:
            nonlocal w
            z = Xa @ w + sum(_vector(ectx.recv(h, "contribution"), n, "contribution") for h in ctx.hosts)
            residual = _sigmoid(z) - y
            ectx.broadcast("residual", residual)
            w = w - plan.learning_rate * Xa.T @ residual / n
            return EpochOutcome({"loss": float(np.mean(np.logaddexp(0, z) - y * z))}, stop=False)

        session.run(epoch, lambda: {"w": w}, NAME)
        self.history_ = session.history
        self.part_ = GuestPart(w[:-1], float(w[-1]))
        return self

    def predict_proba(self, ctx: Context, X: np.ndarray) -> np.ndarray:
        p = self.part_.predict_proba(X, contributions.guest_collect(ctx, len(X), width=1))
        return np.column_stack([1 - p, p])


@register_algorithm(NAME)
class FedLinear:
    accepts_key_bits = False

    def check_params(self, params: dict[str, Any]) -> None:
        known_keys(params, PARAMS)
        if not isinstance(params.get("epochs", 1), int) or params.get("epochs", 1) < 1:
            raise ConfigError(f"epochs must be a positive int, got {params['epochs']!r}")

    def guest_fit(self, ctx: Context, params: dict[str, Any], X: np.ndarray, y: np.ndarray,
                  checkpoint_dir: Path) -> Estimator:
        return Estimator(**{**PARAMS, **params}).fit(ctx, X, np.asarray(y, dtype=np.float64), checkpoint_dir)

    def host_fit(self, ctx: Context, X: np.ndarray, settings: HostSettings,
                 checkpoint_dir: Path | None) -> HostPart:
        session = host_start(ctx, Plan, HostPolicy(allow_insecure=settings.allow_insecure), len(X), 0,
                             checkpoint_dir)
        w = np.zeros(X.shape[1]) if session.state is None else session.state["w"]

        def epoch(ectx: Context, e: int) -> EpochOutcome:
            nonlocal w
            ectx.send(ctx.guest, "contribution", X @ w)
            residual = _vector(ectx.recv(ctx.guest, "residual"), len(X), "residual")
            w = w - session.plan.learning_rate * X.T @ residual / len(X)
            return EpochOutcome({}, stop=False)

        session.run(epoch, lambda: {"w": w}, f"{NAME} host")
        return HostPart(w)

    def host_predict(self, ctx: Context, X: np.ndarray, part: HostPart) -> None:
        contributions.host_contribute(ctx, X, part)

    def part_type(self, role: str) -> type[GuestPart] | type[HostPart]:
        return GuestPart if role == "guest" else HostPart

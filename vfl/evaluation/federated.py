"""The federated evaluate step: any trained split model on an aligned test set.

Each host runs its model part on its own rows and sends the per-row contribution (what it
would send at inference: `X_h @ w_h` for LR, `A W` for split NN); the guest merges them
with its own part into scores and evaluates against its labels. So the guest learns exactly
what inference shows it (see DESIGN.md, leakage table) and hosts never see labels or
scores; they only receive the metric values the guest chooses to share (`share_metrics`,
AUC and KS by default, `()` for nothing).

    guest: scores = model.predict_proba(X_g, [contribution_h for each host]); evaluate
    host:  send contribution(X_h); receive the shared metrics
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vfl.errors import ConfigError, ProtocolError
from vfl.evaluation.evaluate import evaluate_scores

CONTRIBUTION = "contribution"  # host -> guest: (n_rows, k) float64 of the host's model part
SHARED_METRICS = "shared_metrics"  # guest -> hosts: {metric name: value} the guest shares


class EvalContext(Protocol):
    """The part of `vfl.parties.Context` this step uses."""

    @property
    def guest(self) -> str: ...
    @property
    def hosts(self) -> list[str]: ...
    def send(self, peer: str, tag: str, obj: Any) -> None: ...
    def recv(self, peer: str, tag: str, timeout: float | None = None) -> Any: ...
    def broadcast(self, tag: str, obj: Any, to: list[str] | None = None) -> None: ...


class GuestModel(Protocol):
    def predict_proba(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray: ...


class HostModel(Protocol):
    def contribution(self, X: np.ndarray) -> np.ndarray: ...


def _check_contribution(value: Any, n_rows: int, host: str) -> np.ndarray:
    """A host's contribution must be a finite float matrix with one row per test row."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fi":
        raise ProtocolError(
            f"evaluate: host '{host}' sent {type(value).__name__} as '{CONTRIBUTION}', expected a float array"
        )
    c = (
        value.astype(np.float64).reshape(value.shape[0], -1)
        if value.ndim == 1
        else value.astype(np.float64)
    )
    if c.ndim != 2 or c.shape[0] != n_rows:
        raise ProtocolError(
            f"evaluate: host '{host}' sent a contribution of shape {value.shape}, expected {n_rows} rows "
            "(are both test sets aligned by the same PSI run?)"
        )
    if not np.all(np.isfinite(c)):
        raise ProtocolError(f"evaluate: host '{host}' sent NaN/infinite contributions")
    return c


def guest_evaluate(
    ctx: EvalContext,
    model: GuestModel,
    X: np.ndarray,
    y: Any,
    out_dir: Path | str,
    sample_weight: Any = None,
    reference_scores: Any = None,
    share_metrics: Sequence[str] = ("auc", "ks"),
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """Guest role: collect every host's contribution, score, write the evaluation to out_dir."""
    n_rows = int(np.asarray(X).shape[0])
    contributions = [_check_contribution(ctx.recv(h, CONTRIBUTION), n_rows, h) for h in ctx.hosts]
    scores = model.predict_proba(X, contributions)
    result = evaluate_scores(
        y,
        scores,
        out_dir,
        sample_weight=sample_weight,
        reference_scores=reference_scores,
        **evaluate_kwargs,
    )
    ctx.broadcast(SHARED_METRICS, _shared(result, share_metrics))
    return result


def _shared(result: dict[str, Any], names: Sequence[str]) -> dict[str, float]:
    scalars = {
        k: v for k, v in result.items() if isinstance(v, float | int) and not isinstance(v, bool)
    }
    unknown = [n for n in names if n not in scalars]
    if unknown:
        raise ConfigError(
            f"evaluate: share_metrics {unknown} are not numeric metrics; choose from {sorted(scalars)}"
        )
    return {n: float(scalars[n]) for n in names}


def host_evaluate(ctx: EvalContext, model: HostModel, X: np.ndarray) -> dict[str, float]:
    """Host role: send this party's contribution for the aligned test rows; return what the guest shares."""
    ctx.send(ctx.guest, CONTRIBUTION, np.asarray(model.contribution(X), dtype=np.float64))
    shared = ctx.recv(ctx.guest, SHARED_METRICS)
    if not isinstance(shared, dict) or not all(
        isinstance(v, float | int) and not isinstance(v, bool) for v in shared.values()
    ):
        raise ProtocolError(
            f"evaluate: guest '{ctx.guest}' sent malformed '{SHARED_METRICS}': expected {{name: number}}"
        )
    return {str(k): float(v) for k, v in shared.items()}

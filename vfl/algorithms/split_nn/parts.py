"""The serving parts of a split NN: what each party keeps after training (never sent).

Host: ``contribution(X_h) = bottom_h(X_h) @ W`` with ``W = U + V`` (the guest hands ``U`` over
at the end of training). Guest: ``p = sigmoid(top(bottom_g(X_g) + sum_h contribution_h))``.
Weights are saved with `torch.save` and loaded with `torch.load(weights_only=True)`, plus a
JSON file with the architecture spec when the module was declared with `nn_spec.mlp`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vfl.algorithms.split_nn.nn_spec import build_module, module_spec
from vfl.errors import ConfigError, DataError

KIND = "split_nn"
HOST_FILES = ("split_nn_host.pt", "split_nn_host.json")
GUEST_FILES = ("split_nn_guest.pt", "split_nn_guest.json")


def as_float_matrix(X: Any, what: str) -> np.ndarray:
    """A numeric 2-D float32 matrix from a DataFrame or array (names the bad column)."""
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        bad = [str(c) for c, t in zip(X.columns, X.dtypes, strict=True) if t.kind not in "biuf"]
        if bad:
            raise DataError(f"{what}: non-numeric columns {bad}")
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim != 2:
        raise DataError(f"{what}: expected a 2-D table, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what}: has missing or infinite values (impute them first)")
    return arr


@torch.no_grad()
def run_module(module: nn.Module, X: np.ndarray) -> np.ndarray:
    module.eval()
    return module(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).double().numpy()


def _load_module(spec: Any, given: nn.Module | None, state: dict[str, Any], what: str) -> nn.Module:
    if given is None:
        if spec is None:
            raise ConfigError(f"{what} was not declared with nn_spec.mlp: pass the module to load()")
        given = build_module(spec, what)
    given.load_state_dict(state)
    return given


def _write(directory: Path, files: tuple[str, str], weights: dict[str, Any],
           meta: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(weights, directory / files[0])
    (directory / files[1]).write_text(json.dumps({"kind": KIND, **meta}, indent=2))


def _read(directory: Path, files: tuple[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    meta_path = directory / files[1]
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{meta_path}: cannot read split NN model part: {exc}") from exc
    if meta.get("kind") != KIND:
        raise ConfigError(f"{meta_path}: kind {meta.get('kind')!r} is not '{KIND}'")
    weights = torch.load(directory / files[0], weights_only=True)
    return weights, meta


class SplitNNHostPart:
    """A host's serving part: its bottom model and the merged interactive weights W."""

    kind = KIND

    def __init__(self, bottom: nn.Module, W: np.ndarray) -> None:
        self.bottom = bottom
        self.W = np.asarray(W, dtype=np.float64)

    def contribution(self, X: np.ndarray) -> np.ndarray:
        A = run_module(self.bottom, as_float_matrix(X, "host features"))
        if A.ndim != 2 or A.shape[1] != self.W.shape[0]:
            raise DataError(f"host bottom output has shape {A.shape}, W has {self.W.shape}")
        return A @ self.W

    def save(self, directory: Path) -> None:
        _write(Path(directory), HOST_FILES,
               {"bottom": self.bottom.state_dict(), "W": torch.from_numpy(self.W)},
               {"bottom": module_spec(self.bottom), "W_shape": list(self.W.shape)})

    @classmethod
    def load(cls, directory: Path, bottom: nn.Module | None = None) -> SplitNNHostPart:
        weights, meta = _read(Path(directory), HOST_FILES)
        module = _load_module(meta.get("bottom"), bottom, weights["bottom"], "host bottom model")
        return cls(module, weights["W"].numpy())


class SplitNNGuestPart:
    """The guest's serving part: its bottom model (optional) and the top model."""

    kind = KIND

    def __init__(self, top: nn.Module, guest_bottom: nn.Module | None = None) -> None:
        self.top = top
        self.guest_bottom = guest_bottom

    def predict_proba(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray:
        if not contributions:
            raise DataError("split NN needs the contribution of at least one host")
        z = np.sum(contributions, axis=0)
        if self.guest_bottom is not None:
            z = z + run_module(self.guest_bottom, as_float_matrix(X, "guest features"))
        logits = run_module(self.top, z.astype(np.float32)).reshape(len(z), -1)[:, 0]
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, directory: Path) -> None:
        weights: dict[str, Any] = {"top": self.top.state_dict()}
        if self.guest_bottom is not None:
            weights["guest_bottom"] = self.guest_bottom.state_dict()
        _write(Path(directory), GUEST_FILES, weights,
               {"top": module_spec(self.top), "guest_bottom": module_spec(self.guest_bottom),
                "has_guest_bottom": self.guest_bottom is not None})

    @classmethod
    def load(cls, directory: Path, top: nn.Module | None = None,
             guest_bottom: nn.Module | None = None) -> SplitNNGuestPart:
        weights, meta = _read(Path(directory), GUEST_FILES)
        top_m = _load_module(meta.get("top"), top, weights["top"], "top model")
        bottom_m = None
        if meta.get("has_guest_bottom"):
            bottom_m = _load_module(meta.get("guest_bottom"), guest_bottom,
                                    weights["guest_bottom"], "guest bottom model")
        return cls(top_m, bottom_m)

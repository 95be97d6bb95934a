"""The parts a trained HE logistic regression leaves on each party (for serving).

A host keeps its weights `w_h` and contributes `X_h @ w_h` per row; the guest keeps `w_g`
and the intercept and merges: `p = sigmoid(X_g @ w_g + b + sum_h X_h @ w_h)`. Parts are
stored as JSON (no pickle). `mode` records an insecure-plaintext training run so the label
follows the model wherever it goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfl.algorithms.guest_classifier import sigmoid
from vfl.errors import DataError

KIND = "hetero_lr"
HOST_FILE = "hetero_lr_host.json"
GUEST_FILE = "hetero_lr_guest.json"


def _check_width(X: np.ndarray, coef: np.ndarray, who: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != coef.shape[0]:
        raise DataError(f"{who} expects a 2-D array with {coef.shape[0]} columns, got shape {X.shape}")
    return X


def _read(path: Path, kind_file: str) -> dict[str, Any]:
    file = Path(path) / kind_file
    if not file.exists():
        raise DataError(f"no model part {kind_file} in {path}")
    data = json.loads(file.read_text())
    if data.get("kind") != KIND:
        raise DataError(f"{file} is not a {KIND} model part (kind={data.get('kind')!r})")
    return data


@dataclass
class LRHostPart:
    coef_: np.ndarray
    mode: str = "he"
    feature_names: list[str] | None = None
    kind: str = field(default=KIND, init=False)

    def contribution(self, X: np.ndarray) -> np.ndarray:
        return (_check_width(X, self.coef_, "LRHostPart") @ self.coef_)[:, None]

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        body = {"kind": KIND, "mode": self.mode, "coef": self.coef_.tolist(),
                "feature_names": self.feature_names}
        (Path(directory) / HOST_FILE).write_text(json.dumps(body))

    @classmethod
    def load(cls, directory: Path) -> LRHostPart:
        d = _read(directory, HOST_FILE)
        return cls(np.asarray(d["coef"], dtype=np.float64), d["mode"], d["feature_names"])


@dataclass
class LRGuestPart:
    coef_: np.ndarray
    intercept_: float
    mode: str = "he"
    feature_names: list[str] | None = None
    kind: str = field(default=KIND, init=False)

    def decision_function(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray:
        z = _check_width(X, self.coef_, "LRGuestPart") @ self.coef_ + self.intercept_
        for c in contributions:
            c = np.asarray(c, dtype=np.float64)
            if c.shape != (z.shape[0], 1):
                raise DataError(f"a host contribution has shape {c.shape}, expected ({z.shape[0]}, 1)")
            z = z + c[:, 0]
        return z

    def predict_proba(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray:
        return sigmoid(self.decision_function(X, contributions))

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        body = {"kind": KIND, "mode": self.mode, "coef": self.coef_.tolist(),
                "intercept": float(self.intercept_), "feature_names": self.feature_names}
        (Path(directory) / GUEST_FILE).write_text(json.dumps(body))

    @classmethod
    def load(cls, directory: Path) -> LRGuestPart:
        d = _read(directory, GUEST_FILE)
        return cls(np.asarray(d["coef"], dtype=np.float64), float(d["intercept"]), d["mode"],
                   d["feature_names"])

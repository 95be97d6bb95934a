"""The parts a trained SecureBoost model leaves on each party (for serving).

The guest keeps the trees: per node its owner (a leaf, the guest, or a host), its children,
its leaf value and, for its own splits, feature and threshold. A host keeps only its own
table, column ``j`` -> (feature, threshold, where missing values go), for the nodes whose
split it won; the guest's trees refer to such a node by (host, column) and never learn the
feature or the threshold. At prediction time a host's contribution is its routing bit per
row and column (1: the row goes left), the contributions protocol of every algorithm; the guest
walks its trees with its own features and those bits. Parts are JSON (no pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfl.algorithms.guest_classifier import sigmoid
from vfl.errors import DataError

KIND = "secureboost"
HOST_FILE = "secureboost_host.json"
GUEST_FILE = "secureboost_guest.json"
LEAF, GUEST = -1, 0  # node owners; host i (0-based, of the sorted host names) is i + 1


def _read(directory: Path, name: str) -> dict[str, Any]:
    file = Path(directory) / name
    if not file.exists():
        raise DataError(f"no model part {name} in {directory}")
    data = json.loads(file.read_text())
    if data.get("kind") != KIND:
        raise DataError(f"{file} is not a {KIND} model part (kind={data.get('kind')!r})")
    return data


def _columns(X: np.ndarray, width: int, who: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != width:
        raise DataError(f"{who} expects a 2-D array with {width} columns, got shape {X.shape}")
    return X


@dataclass
class SBHostPart:
    """A host's split table: column j routes a row left when ``X[:, feature[j]] <= threshold[j]``
    (a missing value goes left when ``missing_left[j]``)."""

    n_features: int
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    tree: np.ndarray  # the tree of each column (early stopping drops later trees)
    feature_names: list[str] | None = None
    kind: str = field(default=KIND, init=False)

    @property
    def width(self) -> int:
        """Columns of the contribution (one even without splits: the wire needs a width)."""
        return max(1, len(self.feature))

    def contribution(self, X: np.ndarray) -> np.ndarray:
        """(n, width) routing bits, 1.0 where the row goes left at that column's node."""
        X = _columns(X, self.n_features, "SBHostPart")
        out = np.zeros((len(X), self.width))
        if len(self.feature):
            x = X[:, self.feature]
            out[:, : len(self.feature)] = np.where(np.isnan(x), self.missing_left, x <= self.threshold)
        return out

    def split_counts(self) -> dict[str, int]:
        """How many nodes split on each of this host's features (by its own names)."""
        names = self.feature_names or [f"x{j}" for j in range(self.n_features)]
        counts = np.bincount(self.feature, minlength=self.n_features)
        return {names[j]: int(c) for j, c in enumerate(counts) if c}

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        body = {"kind": KIND, "n_features": self.n_features, "feature": self.feature.tolist(),
                "threshold": self.threshold.tolist(), "missing_left": self.missing_left.tolist(),
                "tree": self.tree.tolist(), "feature_names": self.feature_names}
        (Path(directory) / HOST_FILE).write_text(json.dumps(body))

    @classmethod
    def load(cls, directory: Path) -> SBHostPart:
        d = _read(directory, HOST_FILE)
        return cls(int(d["n_features"]), np.asarray(d["feature"], dtype=np.int64),
                   np.asarray(d["threshold"], dtype=np.float64), np.asarray(d["missing_left"], dtype=bool),
                   np.asarray(d["tree"], dtype=np.int64), d["feature_names"])


@dataclass
class SBGuestPart:
    """The guest's trees as flat node arrays; `roots[t]` is the first node of tree t.

    A node's `owner` is LEAF, GUEST or 1 + the index of its host in `hosts` (sorted names);
    `feature` is the guest's feature or the host's column; `value` is a leaf's contribution
    to the raw score (learning rate included).
    """

    n_features: int
    hosts: list[str]
    base_score: float
    roots: np.ndarray
    owner: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    feature_names: list[str] | None = None
    kind: str = field(default=KIND, init=False)

    ARRAYS = ("roots", "owner", "feature", "threshold", "missing_left", "left", "right", "value")

    def decision_function(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray:
        """Raw scores: `contributions` are the hosts' routing bits, in the order of `hosts`."""
        X = _columns(X, self.n_features, "SBGuestPart")
        if len(contributions) != len(self.hosts):
            raise DataError(f"{len(contributions)} host contributions for the {len(self.hosts)} hosts "
                            f"{self.hosts} of this model")
        bits = [np.asarray(c, dtype=np.float64) for c in contributions]
        for h, b in enumerate(bits):
            used = self.feature[self.owner == h + 1]
            if b.shape[0] != len(X) or b.ndim != 2 or (used.size and b.shape[1] <= used.max()):
                raise DataError(f"the contribution of host '{self.hosts[h]}' has shape {b.shape}; "
                                f"its model part does not match this one")
        idx = np.tile(self.roots, (len(X), 1))
        rows = np.arange(len(X))[:, None].repeat(len(self.roots), axis=1)
        while True:
            own = self.owner[idx]
            inner = own != LEAF
            if not inner.any():
                break
            go_left = np.zeros(idx.shape, dtype=bool)
            mine = own == GUEST
            if mine.any():
                node, r = idx[mine], rows[mine]
                x = X[r, self.feature[node]]
                go_left[mine] = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            for h, b in enumerate(bits):
                theirs = own == h + 1
                if theirs.any():
                    go_left[theirs] = b[rows[theirs], self.feature[idx[theirs]]] > 0.5
            idx = np.where(inner, np.where(go_left, self.left[idx], self.right[idx]), idx)
        return self.base_score + self.value[idx].sum(axis=1)

    def predict_proba(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray:
        return sigmoid(self.decision_function(X, contributions))

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        body = {"kind": KIND, "n_features": self.n_features, "hosts": self.hosts,
                "base_score": self.base_score, "feature_names": self.feature_names,
                **{k: getattr(self, k).tolist() for k in self.ARRAYS}}
        (Path(directory) / GUEST_FILE).write_text(json.dumps(body))

    @classmethod
    def load(cls, directory: Path) -> SBGuestPart:
        d = _read(directory, GUEST_FILE)
        types = {"threshold": np.float64, "value": np.float64, "missing_left": bool}
        arrays = {k: np.asarray(d[k], dtype=types.get(k, np.int64)) for k in cls.ARRAYS}
        return cls(int(d["n_features"]), list(d["hosts"]), float(d["base_score"]),
                   feature_names=d["feature_names"], **arrays)

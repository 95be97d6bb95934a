"""What a trained federated model leaves on each party, in the shape serving needs.

A model is split: every host keeps a `HostPart` (turns its own preprocessed features into its
contribution for each row), the guest keeps a `GuestPart` (merges its own features with the
hosts' contributions into scores). Neither part is ever sent to the other party.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class HostPart(Protocol):
    """A host's share of a model: `contribution(X_h)` is what the guest receives per row."""

    kind: str

    def contribution(self, X: np.ndarray) -> np.ndarray:
        """(n, k) float64: LR -> X_h @ w_h (k=1); split NN -> bottom_h(X_h) @ W (k=width)."""
        ...

    def save(self, directory: Path) -> None: ...


class GuestPart(Protocol):
    """The guest's share: merges its own features with every host's contribution."""

    kind: str

    def predict_proba(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray:
        """(n,) probability of the positive class from guest features + host contributions."""
        ...

    def save(self, directory: Path) -> None: ...

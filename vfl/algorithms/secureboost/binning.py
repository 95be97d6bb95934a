"""Quantile bins of one party's own features, fitted once before the first tree.

Each feature gets at most ``max_bin`` bins from the quantiles of its non-missing training
values; a value ``x`` falls in bin ``b`` when ``edges[b-1] < x <= edges[b]`` (the last bin
is open above), and a missing value (NaN) in its own bin, ``max_bin``. So a split "bins
``<= b`` go left" is the threshold rule ``x <= edges[b]``, which is how the party's model
part routes rows at prediction time. Bins never leave the party that owns the feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vfl.errors import DataError


@dataclass(frozen=True)
class Bins:
    """The fitted bin edges of every feature of one party.

    Parameters
    ----------
    edges : list of numpy.ndarray
        Per feature, the ascending upper edges of its bins but the last (at most
        ``max_bin - 1`` of them).
    max_bin : int
        Bins per feature; code ``max_bin`` is the missing-value bin.
    """

    edges: list[np.ndarray]
    max_bin: int

    @classmethod
    def fit(cls, X: np.ndarray, max_bin: int) -> Bins:
        """Quantile edges of every column of `X` (NaN = missing, ignored for the edges)."""
        levels = np.arange(1, max_bin) / max_bin
        edges = []
        for j in range(X.shape[1]):
            col = X[:, j][~np.isnan(X[:, j])]
            if col.size == 0:
                edges.append(np.empty(0))
                continue
            cuts = np.unique(np.quantile(col, levels, method="inverted_cdf"))
            edges.append(cuts[cuts < col.max()])  # the top value's bin is the open last one
        return cls(edges, max_bin)

    @property
    def n_features(self) -> int:
        return len(self.edges)

    @property
    def n_codes(self) -> int:
        """Codes per feature: the value bins and the missing bin."""
        return self.max_bin + 1

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, features) uint8 bin codes of `X`; NaN -> ``max_bin``."""
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise DataError(f"expected {self.n_features} feature columns, got shape {X.shape}")
        codes = np.empty(X.shape, dtype=np.uint8)
        for j, e in enumerate(self.edges):
            col = X[:, j]
            codes[:, j] = np.searchsorted(e, col, side="left")
            codes[np.isnan(col), j] = self.max_bin
        return codes

    def threshold(self, feature: int, bin_: int) -> float:
        """The value threshold of the split "bins <= `bin_` go left" of `feature`."""
        return float(self.edges[feature][bin_])

    def candidates(self, feature: int) -> int:
        """How many thresholds `feature` offers: one per edge."""
        return len(self.edges[feature])

"""What the guest may show about the model's inputs: its own coefficients and each party's IV.

Each party sees its own features only: the guest's coefficients and the IV of its own columns
by name; a host's IV reaches the guest under anonymous column names (x0, x1, ...), the host
keeps the names (see vfl.preprocessing.woe).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

IV_STRENGTH = ((0.02, "not predictive"), (0.1, "weak"), (0.3, "medium"), (0.5, "strong"))


def coefficients_table(part: Any, names: Sequence[str]) -> pd.DataFrame | None:
    """A logistic part's coefficients by feature (largest effect first) and its intercept;
    None for a part without coefficients (a split NN's bottom model)."""
    coef = getattr(part, "coef_", None)
    if coef is None:
        return None
    coef = np.asarray(coef, dtype=np.float64).ravel()
    frame = pd.DataFrame({"feature": list(names), "coefficient": coef})
    frame = frame.iloc[np.argsort(-np.abs(coef), kind="stable")].reset_index(drop=True)
    intercept = getattr(part, "intercept_", None)
    if intercept is not None:
        frame = pd.concat([frame, pd.DataFrame({"feature": ["(intercept)"], "coefficient": [float(intercept)]})],
                          ignore_index=True)
    return frame


def iv_table(iv: pd.Series) -> pd.DataFrame:
    """IV per column, highest first, with the usual reading (< 0.02 not predictive ... > 0.5
    suspiciously strong)."""
    frame = pd.DataFrame({"feature": [str(c) for c in iv.index], "iv": iv.to_numpy(dtype=np.float64)})
    frame["strength"] = [_strength(v) for v in frame["iv"]]
    return frame.sort_values("iv", ascending=False, kind="stable").reset_index(drop=True)


def _strength(value: float) -> str:
    for bound, label in IV_STRENGTH:
        if value < bound:
            return label
    return "suspiciously strong (check for leakage)"

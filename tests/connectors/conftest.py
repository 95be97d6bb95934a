"""Shared data for the connector tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def credit(shared_data) -> pd.DataFrame:
    """The default_credit guest table (30,000 rows: int64 id and y, 13 float64 features),
    parsed by pandas itself so our readers are checked against an independent parser."""
    return pd.read_csv(shared_data / "default_credit_hetero_guest.csv")


@pytest.fixture
def mixed() -> pd.DataFrame:
    """Awkward values: extreme and subnormal floats, NaN, negative ints, unicode strings."""
    rng = np.random.default_rng(7)
    n = 2_000
    floats = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
    floats[:6] = [np.nan, 5e-324, -0.0, 1.7976931348623157e308, 0.1 + 0.2, 1 / 3]
    return pd.DataFrame({
        "id": np.arange(n, dtype=np.int64) * 7919 - 10**12,
        "f": floats,
        "g": rng.random(n),
        "s": [f"k{i}-ü,\"q\"" for i in range(n)],
    })

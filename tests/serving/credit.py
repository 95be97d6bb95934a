"""The serving tests' credit data: a bank table (label and features) and a partner table that
lacks a tenth of the bank's customers, in another order, and each party's preprocessing."""

from __future__ import annotations

import numpy as np
import pandas as pd

MODEL = "credit"
GUEST_FEATURES = ["g0", "g1", "g2", "segment"]
HOST_FEATURES = ["h0", "h1", "h2", "region"]


def credit_tables(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n` bank rows with ids from 10,000 and the partner's rows for nine in ten of them."""
    rng = np.random.default_rng(seed)
    ids = np.arange(10_000, 10_000 + n, dtype=np.int64)
    g, h = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    segment = rng.choice(["A", "B", "C"], n)
    region = rng.choice(["north", "south", "east"], n)
    logit = (g @ [1.0, -0.6, 0.3] + h @ [0.9, 0.5, -0.4] + 0.6 * (segment == "A")
             - 0.8 * (region == "north"))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    guest = pd.DataFrame({"id": ids, "y": y, "g0": g[:, 0], "g1": g[:, 1], "g2": g[:, 2],
                          "segment": segment})
    host = pd.DataFrame({"id": ids, "h0": h[:, 0], "h1": h[:, 1], "h2": h[:, 2], "region": region})
    keep = rng.permutation(n)[: n - n // 10]
    return guest, host.iloc[np.sort(keep)].sample(frac=1.0, random_state=seed).reset_index(drop=True)


def preprocessing(party: str) -> dict[str, object]:
    """The bank's or the partner's preprocessing: three numeric columns scaled, one category
    one-hot encoded."""
    features, category = (GUEST_FEATURES, "segment") if party == "bank" else (HOST_FEATURES, "region")
    return {"numeric": {"columns": features[:3], "scale": "standard"},
            "categorical": {"columns": [category], "encode": "onehot", "handle_unknown": "error"}}

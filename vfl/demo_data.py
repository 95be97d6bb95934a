"""Raw demo data for examples and tests: the UCI credit card table split as bank + partner.

The split matches the shared hetero files (guest: PAY_6, BILL_AMT1-6, PAY_AMT1-6 and the label;
host: LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE, PAY_0, PAY_2-PAY_5), but keeps the raw values
and injects missing feature values (seeded), so each party has real preprocessing to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vfl.errors import DataError

ID, LABEL, RAW_LABEL = "id", "y", "default.payment.next.month"
UCI_GUEST_COLUMNS = ["PAY_6", *[f"BILL_AMT{i}" for i in range(1, 7)],
                     *[f"PAY_AMT{i}" for i in range(1, 7)]]
UCI_HOST_NUMERIC = ["LIMIT_BAL", "AGE", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5"]
UCI_HOST_CATEGORICAL = ["SEX", "EDUCATION", "MARRIAGE"]
UCI_HOST_COLUMNS = ["LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE",
                    "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5"]

# Each party's preprocessing of its raw columns (the dict form of PreprocessingConfig).
UCI_GUEST_PREPROCESSING: dict[str, Any] = {
    "numeric": {"columns": UCI_GUEST_COLUMNS, "impute": "median", "indicator": True,
                "clip": [0.01, 0.99], "scale": "standard"},
}
UCI_HOST_PREPROCESSING: dict[str, Any] = {
    "numeric": {"columns": UCI_HOST_NUMERIC, "impute": "median", "indicator": True,
                "clip": [0.01, 0.99], "scale": "standard"},
    "categorical": {"columns": UCI_HOST_CATEGORICAL, "impute": "most_frequent",
                    "encode": "onehot", "handle_unknown": "ignore"},
}


def split_uci(path: str | Path, *, missing_rate: float = 0.05,
              seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(guest, host) frames from raw `UCI_Credit_Card.csv`: `id` + own columns (+ `y` on the
    guest), with each feature cell blanked independently with probability `missing_rate`."""
    if not 0.0 <= missing_rate < 1.0:
        raise DataError(f"missing_rate must be in [0, 1), got {missing_rate}")
    try:
        raw = pd.read_csv(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the UCI credit card table: {exc}") from exc
    needed = ["ID", RAW_LABEL, *UCI_GUEST_COLUMNS, *UCI_HOST_COLUMNS]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    rng = np.random.default_rng(seed)
    features = raw[UCI_GUEST_COLUMNS + UCI_HOST_COLUMNS]
    features = features.mask(rng.random(features.shape) < missing_rate)
    guest = pd.concat([raw["ID"].rename(ID), raw[RAW_LABEL].rename(LABEL),
                       features[UCI_GUEST_COLUMNS]], axis=1)
    host = pd.concat([raw["ID"].rename(ID), features[UCI_HOST_COLUMNS]], axis=1)
    return guest, host

"""One party's servable share of a model: its model part, its preprocessing, its input columns.

The bundle is what the model store keeps for a party and what its service loads to score:
raw feature rows in, this party's part of the score out. Schema drift (a missing column, a new
dtype, an unseen category under `on_unknown: error`) is an error, never a silent wrong score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vfl.algorithms import registry
from vfl.errors import ConfigError, DataError
from vfl.preprocessing.preprocessor import PartyPreprocessor

BUNDLE_FILE = "bundle.json"
PART_DIR = "part"
PREPROCESSING_DIR = "preprocessing"

ROLES = ("guest", "host")


@dataclass
class ModelBundle:
    algorithm: str
    role: str
    part: Any  # vfl.algorithms.base.HostPart or GuestPart
    columns: list[str]
    preprocessor: PartyPreprocessor | None = None

    def features(self, X: pd.DataFrame) -> np.ndarray:
        """Raw rows -> the model's input matrix, exactly as at training."""
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise DataError(f"scoring input lacks column(s) {missing} this model was trained on")
        rows = X[self.columns]
        if self.preprocessor is not None:
            return self.preprocessor.transform(rows).to_numpy(np.float64)
        bad = [c for c, dtype in rows.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)]
        if bad:
            raise DataError(f"scoring input column(s) {bad} are not numeric (the model has no preprocessing)")
        values = rows.to_numpy(np.float64)
        if np.isnan(values).any():
            cols = [c for c in self.columns if rows[c].isna().any()]
            raise DataError(f"scoring input has missing values in {cols} and the model has no imputer")
        return values

    def save(self, directory: Path) -> None:
        self.part.save(directory / PART_DIR)
        if self.preprocessor is not None:
            self.preprocessor.save(directory / PREPROCESSING_DIR)
        meta = {"algorithm": self.algorithm, "role": self.role, "columns": self.columns,
                "preprocessing": self.preprocessor is not None}
        (directory / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> ModelBundle:
        try:
            meta = json.loads((directory / BUNDLE_FILE).read_text())
            if meta["role"] not in ROLES:
                raise ValueError(f"role {meta['role']!r} is not one of {ROLES}")
            part_type = registry.get(meta["algorithm"], where="algorithm").part_type(meta["role"])
        except (OSError, ValueError, KeyError, ConfigError) as exc:
            raise DataError(f"{directory}: not a model bundle ({type(exc).__name__}: {exc})") from None
        pre = PartyPreprocessor.load(directory / PREPROCESSING_DIR) if meta["preprocessing"] else None
        return cls(meta["algorithm"], meta["role"], part_type.load(directory / PART_DIR),
                   list(meta["columns"]), pre)

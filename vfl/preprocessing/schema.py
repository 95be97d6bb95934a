"""The input schema a party's preprocessing was fitted on, and the checks that enforce it.

A model scored on drifted input gives a wrong score without any error. So the schema recorded
at fit time (columns, dtype kinds, categories seen) is checked on every later batch, and every
mismatch raises a `DataError` naming the column, unless the configuration chose a fallback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vfl.errors import DataError

NUMERIC, STRING, BOOL = "numeric", "string", "bool"


def kind_of(series: pd.Series) -> str:
    """Coarse dtype family: int and float are one kind (a NaN turns int64 into float64)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return BOOL
    if pd.api.types.is_numeric_dtype(series.dtype):
        return NUMERIC
    return STRING


@dataclass
class ColumnSchema:
    name: str
    dtype: str
    kind: str
    missing_at_fit: int
    categories: list[Any] | None = None  # values seen at fit, for categorical columns


@dataclass
class Schema:
    """What `fit` saw; `check` rejects a batch that does not match it."""

    columns: list[ColumnSchema] = field(default_factory=list)

    @classmethod
    def record(cls, df: pd.DataFrame, columns: Iterable[str]) -> Schema:
        out = []
        for name in columns:
            s = df[name]
            out.append(ColumnSchema(name, str(s.dtype), kind_of(s), int(s.isna().sum())))
        return cls(out)

    def __getitem__(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def check(self, df: pd.DataFrame, *, where: str = "input") -> None:
        """Missing columns, dtype drift and non-finite numbers raise a DataError."""
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
        missing = [c for c in self.names if c not in df.columns]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing} (fitted on {self.names})")
        for col in self.columns:
            s = df[col.name]
            kind = kind_of(s)
            if kind != col.kind and not (col.kind == NUMERIC and kind == BOOL):
                example = s.dropna().iloc[0] if s.notna().any() else None
                raise DataError(
                    f"{where}: column '{col.name}' was {col.dtype} ({col.kind}) at fit but "
                    f"arrived as {s.dtype} ({kind}), e.g. {example!r}"
                )
            if kind == NUMERIC:
                values = s.to_numpy(dtype=np.float64, na_value=np.nan)
                n_inf = int(np.isinf(values).sum())
                if n_inf:
                    raise DataError(f"{where}: column '{col.name}' has {n_inf} infinite value(s)")

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        return cls([ColumnSchema(**c) for c in d["columns"]])

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
    """One column as fit saw it: name, pandas dtype, kind, missing count, categories."""

    name: str
    dtype: str
    kind: str
    missing_at_fit: int
    categories: list[Any] | None = None  # values seen at fit, for categorical columns


@dataclass
class Schema:
    """What `fit` saw; `check` rejects a batch that does not match it.

    Parameters
    ----------
    columns : list of ColumnSchema
        The columns, in order.
    """

    columns: list[ColumnSchema] = field(default_factory=list)

    @classmethod
    def record(cls, df: pd.DataFrame, columns: Iterable[str]) -> Schema:
        """The schema of `columns` of `df`.

        Parameters
        ----------
        df : pandas.DataFrame
            The rows fit sees.
        columns : iterable of str
            The columns to record.

        Returns
        -------
        Schema
            Their dtypes, kinds and missing counts (categories are added by the caller).
        """
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
        """The column names, in order."""
        return [c.name for c in self.columns]

    def check(self, df: pd.DataFrame, *, where: str = "input") -> None:
        """Check a later batch against the schema.

        Parameters
        ----------
        df : pandas.DataFrame
            The batch.
        where : str, default "input"
            What the errors name as the batch.

        Raises
        ------
        DataError
            A column is missing, arrived with another kind of dtype, or has infinite values;
            the message names the column.
        """
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
        """The schema as JSON-ready data (what a saved preprocessor writes)."""
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        """The schema `to_dict` wrote."""
        return cls([ColumnSchema(**c) for c in d["columns"]])

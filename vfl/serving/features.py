"""Where a party's service finds the features of the ids it is asked to score.

Four sources: a file table (CSV/Parquet, local or HDFS) loaded once and indexed by id; the
same table kept on the party's Dask workers, partitioned by id (`vfl.serving.partitioned`,
with ``compute: {engine: dask}``); a SQL table queried per request (bound parameters, only the
requested ids); or a user function ``package.module:function`` taking the ids and returning a
DataFrame. Every source answers in the order asked, with a mask of the ids it could not find:
an unknown id is reported, never scored with made-up values.

Every source answers a request with the rows of the ids found; the scorer applies the party's
preprocessing and part to them in one piece, whatever the source, so a score never depends on
where its features were kept (the same rows in the same batch give the same bits).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import sqlalchemy as sa

from vfl.connectors import DatasetSpec, load_dataset
from vfl.connectors.dataset import missing_as_nan
from vfl.connectors.sql import engine_for
from vfl.connectors.uri import parse_uri
from vfl.errors import ConfigError, DataError


@dataclass
class Lookup:
    """Rows of the ids that were found, in the asked order; `found` flags every asked id."""

    X: pd.DataFrame
    found: np.ndarray


def _pick(table: pd.DataFrame, ids: pd.Series) -> Lookup:
    """Select `ids` from a table indexed by id, keeping dtypes (no NaN-filled placeholders)."""
    pos = table.index.get_indexer(pd.Index(ids))
    found = pos >= 0
    return Lookup(table.iloc[pos[found]].reset_index(drop=True), found)


class FeatureSource(Protocol):
    columns: list[str]
    id_kind: str | None  # "int" or "str": the type of the id column; None when unknown

    def lookup(self, ids: pd.Series) -> Lookup: ...

    def prepare(self) -> None: ...


class ReadySource:
    """A source ready to answer once constructed (a file table is loaded by its constructor)."""

    def prepare(self) -> None:
        """Nothing left to do before the first request."""


_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,18})", re.ASCII)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def conform_ids(ids: pd.Series, id_kind: str | None) -> pd.Series:
    """Ids as the id column holds them: the string "2" becomes 2 for an integer column (only
    when that is lossless: no sign tricks, spaces or leading zeros), an integer becomes its
    decimal string for a string column; anything else is a DataError naming the id type."""
    if id_kind == "int" and ids.dtype == object:
        bad = [v for v in ids if not (isinstance(v, str) and _INTEGER.fullmatch(v)
                                      and INT64_MIN <= int(v) <= INT64_MAX)]
        if bad:
            shown = ", ".join(repr(v)[:40] for v in bad[:3])
            raise DataError(f"ids must be 64-bit integers for this model (its id column holds int64 "
                            f"ids); {len(bad)} are not, e.g. {shown}")
        return pd.Series(np.fromiter((int(v) for v in ids), dtype=np.int64, count=len(ids)))
    if id_kind == "str" and ids.dtype.kind in "iu":
        return pd.Series([str(v) for v in ids.tolist()], dtype=object)
    return ids


class IndexedTableSource(ReadySource):
    """A file table loaded and validated once, then indexed by its id column."""

    def __init__(self, spec: DatasetSpec, name: str = "serving") -> None:
        data = load_dataset(spec, name=name)
        if data.ids.shape[1] != 1:
            raise ConfigError(f"serving from '{name}' needs a single id column, got {list(data.ids.columns)}")
        self.columns = list(data.X.columns)
        self._X = data.X.set_axis(pd.Index(data.ids.iloc[:, 0]), axis=0)
        self.id_kind: str | None = "int" if self._X.index.dtype.kind in "iu" else "str"

    def lookup(self, ids: pd.Series) -> Lookup:
        return _pick(self._X, ids)


class SqlSource(ReadySource):
    """A SQL table queried per request for exactly the requested ids."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.loc = parse_uri(spec.uri)
        table = self.loc.params.get("table")
        if self.loc.kind != "sql" or not table:
            raise ConfigError(f"a SQL feature source needs '?table=' in its URI: {self.loc.redacted}")
        if len(spec.id_columns) != 1 or spec.features is None:
            raise ConfigError("a SQL feature source needs one id column and an explicit feature list")
        self.id_column = spec.id_columns[0]
        self.columns = list(spec.features)
        self.na_values = list(spec.na_values)
        self._engine = engine_for(self.loc)
        meta = sa.MetaData()
        self._table = sa.Table(table, meta, autoload_with=self._engine, schema=self.loc.params.get("schema"))
        missing = [c for c in [self.id_column, *self.columns] if c not in self._table.c]
        if missing:
            raise DataError(f"{self.loc.redacted}: table '{table}' has no column(s) {missing}")
        self.id_kind: str | None = "int" if isinstance(self._table.c[self.id_column].type, sa.Integer) else "str"
        # numbers stay numbers: a NULL-only answer or a MySQL DOUBLE (Decimal by default) would
        # otherwise arrive as an object column and fail the schema check of the preprocessing
        for column in self._table.columns:
            if isinstance(column.type, sa.Float):
                column.type.asdecimal = False  # reflected MySQL DOUBLEs: Decimal rounded to 10 places
        self._numeric = [c for c in self.columns
                         if isinstance(self._table.c[c].type, sa.Integer | sa.Float | sa.Numeric)
                         and not isinstance(self._table.c[c].type, sa.Boolean)]

    def lookup(self, ids: pd.Series) -> Lookup:
        cols = [self._table.c[c] for c in [self.id_column, *self.columns]]
        wanted = [v.item() if isinstance(v, np.generic) else v for v in ids.unique()]  # DB-API types
        query = sa.select(*cols).where(self._table.c[self.id_column].in_(wanted))
        with self._engine.connect() as conn:
            got = pd.DataFrame(conn.execute(query).fetchall(), columns=[self.id_column, *self.columns])
        for c in self._numeric:
            if got[c].dtype == object:
                got[c] = pd.to_numeric(got[c], errors="coerce").astype(np.float64)
        got[self.columns] = missing_as_nan(got[self.columns], self.na_values)  # as at training
        if got[self.id_column].duplicated().any():
            dup = got.loc[got[self.id_column].duplicated(), self.id_column].head(3).tolist()
            raise DataError(f"{self.loc.redacted}: id(s) {dup} appear more than once in column '{self.id_column}'")
        return _pick(got.set_index(self.id_column), ids)


class CallableSource(ReadySource):
    """`package.module:function`: called with the ids, returns a frame with the id column."""

    def __init__(self, target: str, id_column: str, columns: list[str]) -> None:
        module, _, attr = target.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"feature source callable '{target}' not found: {exc}") from None
        self._fn: Callable[[pd.Series], pd.DataFrame] = fn
        self.id_column = id_column
        self.columns = columns
        self.id_kind: str | None = None

    def lookup(self, ids: pd.Series) -> Lookup:
        got = self._fn(ids)
        if not isinstance(got, pd.DataFrame) or self.id_column not in got.columns:
            raise DataError(f"feature source callable must return a DataFrame with column '{self.id_column}'")
        missing = [c for c in self.columns if c not in got.columns]
        if missing:
            raise DataError(f"feature source callable returned no column(s) {missing}")
        return _pick(got.drop_duplicates(self.id_column).set_index(self.id_column)[self.columns], ids)

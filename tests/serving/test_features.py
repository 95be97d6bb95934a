"""Feature sources answer in the asked order with a found flag per id, and keep numbers numeric
(NULLs, MySQL DOUBLEs) so the preprocessing's schema check sees the dtypes of training."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from vfl.connectors import DatasetSpec, write_table
from vfl.errors import DataError
from vfl.serving.features import CallableSource, IndexedTableSource, SqlSource
from vfl.serving.sources import source_for

TABLE = pd.DataFrame({"id": [3, 1, 2], "x": [0.5, np.nan, 2.5], "n": [7, 8, 9], "c": ["a", "b", None]})


def _spec(uri: str) -> DatasetSpec:
    return DatasetSpec(uri=uri, id_columns=["id"], features=["x", "n", "c"], categorical=["c"])


def _check(source) -> None:
    got = source.lookup(pd.Series([2, 42, 3]))
    assert got.found.tolist() == [True, False, True]
    assert got.X["x"].tolist() == [2.5, 0.5] and got.X["n"].tolist() == [9, 7]
    assert got.X["c"].tolist()[1] == "a"
    nulls = source.lookup(pd.Series([1]))  # a row whose numeric cell is NULL stays numeric
    assert nulls.found.tolist() == [True] and nulls.X["x"].dtype == np.float64 and np.isnan(nulls.X["x"].iloc[0])
    assert pd.api.types.is_numeric_dtype(nulls.X["n"])
    none = source.lookup(pd.Series([41]))
    assert none.found.tolist() == [False] and len(none.X) == 0


def test_indexed_file_source(tmp_path):
    write_table(TABLE, str(tmp_path / "f.parquet"))
    source = source_for(_spec(str(tmp_path / "f.parquet")))
    assert isinstance(source, IndexedTableSource)
    _check(source)


@pytest.mark.parametrize("db", ["sqlite", "mariadb"])
def test_sql_source_queries_only_the_asked_ids_and_keeps_dtypes(tmp_path, request, db):
    url = f"sqlite:///{tmp_path / 'f.db'}" if db == "sqlite" else request.getfixturevalue("mariadb_url")
    engine = sa.create_engine(url)
    TABLE.to_sql("serving_features", engine, if_exists="replace", index=False,
                 dtype={"x": sa.Double(), "n": sa.BigInteger(), "c": sa.String(8)})
    source = source_for(_spec(f"{url}?table=serving_features"))
    assert isinstance(source, SqlSource)
    _check(source)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO serving_features (id, x, n, c) VALUES (2, 1.0, 1, 'a')"))
    with pytest.raises(DataError, match=r"id\(s\) \[2\] appear more than once"):
        source.lookup(pd.Series([2]))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE serving_features"))
    engine.dispose()


def test_callable_source(monkeypatch):
    module = types.ModuleType("bank_features")
    module.lookup = lambda ids: TABLE[TABLE["id"].isin(ids)]  # type: ignore[attr-defined]
    module.broken = lambda ids: TABLE.drop(columns="x")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bank_features", module)
    spec = DatasetSpec(uri="unused.csv", id_columns=["id"], features=["x", "n", "c"])
    source = source_for(spec, "bank_features:lookup")
    assert isinstance(source, CallableSource)
    _check(source)
    with pytest.raises(DataError, match=r"returned no column\(s\) \['x'\]"):
        source_for(spec, "bank_features:broken").lookup(pd.Series([1]))

"""Dataset specs as written in party configs, and validation with clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic
import pytest
import yaml

from vfl.connectors import Dataset, DatasetSpec, load_dataset, write_table
from vfl.connectors.dataset import id_hashes, repeated_hashes
from vfl.errors import DataError


@pytest.fixture
def table(tmp_path):
    """Write a frame to a file (Parquet unless named otherwise) and return its URI."""
    def make(df: pd.DataFrame, name: str = "t.parquet") -> str:
        uri = str(tmp_path / name)
        write_table(df, uri)
        return uri
    return make


def test_spec_from_party_yaml_accepts_id_column_alias():
    config = yaml.safe_load("""
    datasets:
      credit: {uri: "mysql+pymysql://bank:pw@db/crm?table=guest", id_column: id, label: y}
      multi: {uri: x.csv, id_columns: [branch, account], features: [a, b], categorical: b}
    """)
    specs = {k: DatasetSpec.model_validate(v) for k, v in config["datasets"].items()}
    assert specs["credit"].id_columns == ["id"] and specs["credit"].label == "y"
    assert specs["credit"].features is None and specs["credit"].duplicates == "error"
    assert specs["multi"].id_columns == ["branch", "account"]
    assert specs["multi"].categorical == ["b"]
    assert "pw" not in repr(specs["credit"]) and "bank:***@" in repr(specs["credit"])


@pytest.mark.parametrize(("fields", "message"), [
    ({"id_column": "id", "id_columns": ["id"]}, "not both"),
    ({"id_columns": []}, "at least one"),
    ({"id_columns": "id", "label": "id"}, "overlap"),
    ({"id_columns": "id", "features": ["a", "id"]}, "also id or label"),
    ({"id_columns": "id", "features": ["a"], "categorical": ["b"]}, "not among the features"),
    ({"id_columns": "id", "duplicates": "drop"}, "duplicates"),
    ({"id_columns": "id", "colour": "red"}, "colour"),
    ({"id_columns": "id", "uri": "x.xlsx?format=xlsx"}, "unknown format"),
])
def test_bad_specs_name_the_field(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        DatasetSpec.model_validate({"uri": "x.csv", **fields})


def test_guest_and_host_default_credit(shared_data):
    guest = load_dataset({"uri": str(shared_data / "default_credit_hetero_guest.csv"),
                          "id_column": "id", "label": "y"}, name="credit")
    assert isinstance(guest, Dataset) and guest.n_rows == 30_000
    assert list(guest.X.columns) == [f"x{i}" for i in range(13)]
    assert guest.y is not None and guest.y.dtype == np.int64 and guest.y.mean() == pytest.approx(0.2212, abs=1e-3)
    assert guest.ids.columns.tolist() == ["id"] and guest.id.is_unique
    host = load_dataset(DatasetSpec(uri=str(shared_data / "default_credit_hetero_host.csv"),
                                    id_columns=["id"], features=["x3", "x0"]))
    assert host.y is None and list(host.X.columns) == ["x3", "x0"]
    assert host.report == {"rows_read": 30_000, "duplicates_dropped": 0, "nan_counts": {},
                           "inf_counts": {}}
    assert (host.frame.columns == ["id", "x3", "x0"]).all()


def test_missing_id_and_label_columns(table):
    uri = table(pd.DataFrame({"id": [1, 2], "a": [0.1, 0.2]}))
    with pytest.raises(DataError, match=r"dataset 'g' \(.*t\.parquet\): missing id column\(s\) \['cust'\]"):
        load_dataset({"uri": uri, "id_column": "cust"}, name="g")
    with pytest.raises(DataError, match="missing label column 'y'"):
        load_dataset({"uri": uri, "id_column": "id", "label": "y"}, name="g")
    with pytest.raises(DataError, match=r"missing column\(s\) \['b'\]"):
        load_dataset({"uri": uri, "id_column": "id", "features": ["a", "b"]}, name="g")


def test_duplicate_ids_error_or_keep_first(table):
    df = pd.DataFrame({"id": [5, 6, 5, 7, 6, 5], "a": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    uri = table(df)
    with pytest.raises(DataError, match=r"3 duplicate id row\(s\) in \['id'\], e\.g\. \[5, 6\]"):
        load_dataset({"uri": uri, "id_column": "id"})
    ds = load_dataset({"uri": uri, "id_column": "id", "duplicates": "keep_first"})
    assert ds.id.tolist() == [5, 6, 7] and ds.X["a"].tolist() == [1.0, 2.0, 4.0]
    assert ds.report["duplicates_dropped"] == 3 and ds.X.index.equals(ds.ids.index)


def test_composite_ids(table):
    uri = table(pd.DataFrame({"b": ["x", "x", "y"], "n": [1, 1, 1], "a": [0.0, 1.0, 2.0]}))
    with pytest.raises(DataError, match=r"1 duplicate id row\(s\) in \['b', 'n'\], e\.g\. \[\('x', 1\)\]"):
        load_dataset({"uri": uri, "id_columns": ["b", "n"]})
    ds = load_dataset({"uri": uri, "id_columns": ["b", "n"], "duplicates": "keep_first"})
    assert ds.n_rows == 2
    with pytest.raises(DataError, match="composite id"):
        _ = ds.id


def test_non_numeric_features_must_be_declared_categorical(table):
    uri = table(pd.DataFrame({"id": [1, 2, 3], "city": ["Oslo", "Rome", None],
                              "a": [1.0, 2.0, 3.0]}))
    with pytest.raises(DataError, match=r"non-numeric feature column\(s\) \{'city': \['Oslo', 'Rome'\]\}.*categorical"):
        load_dataset({"uri": uri, "id_column": "id"})
    ds = load_dataset({"uri": uri, "id_column": "id", "categorical": ["city"]})
    assert ds.X["city"].tolist()[:2] == ["Oslo", "Rome"]
    assert ds.report["nan_counts"] == {"city": 1}


def test_nan_and_inf_counts_per_column(table):
    uri = table(pd.DataFrame({"id": [1, 2, 3], "a": [np.nan, np.nan, 1.0],
                              "b": [1.0, np.inf, -np.inf], "c": [0.0, 1.0, 2.0]}))
    with pytest.raises(DataError, match=r"infinite values per feature column \{'b': 2\}"):
        load_dataset({"uri": uri, "id_column": "id"})
    ds = load_dataset({"uri": uri, "id_column": "id", "inf": "allow"})
    assert ds.report["nan_counts"] == {"a": 2} and ds.report["inf_counts"] == {"b": 2}
    with pytest.raises(DataError, match=r"missing values per feature column \{'a': 2\} \(nan: error\)"):
        load_dataset({"uri": uri, "id_column": "id", "nan": "error", "inf": "allow"})


def test_ids_and_label_may_not_be_missing(table):
    uri = table(pd.DataFrame({"id": [1.0, np.nan], "y": [0, 1], "a": [0.0, 1.0]}))
    with pytest.raises(DataError, match=r"missing values in id column\(s\): \{'id': 1\}"):
        load_dataset({"uri": uri, "id_column": "id"})
    uri = table(pd.DataFrame({"id": [1, 2], "y": [0, np.nan], "a": [0.0, 1.0]}), "l.csv")
    with pytest.raises(DataError, match="label column 'y' has 1 missing value"):
        load_dataset({"uri": uri, "id_column": "id", "label": "y"})


def test_empty_table(table):
    uri = table(pd.DataFrame({"id": np.array([], dtype=np.int64), "a": np.array([], float)}))
    with pytest.raises(DataError, match="the table is empty"):
        load_dataset({"uri": uri, "id_column": "id"})


def test_unreachable_source_names_dataset_without_password(mariadb_server):
    spec = {"uri": f"{mariadb_server.url}?table=nowhere", "id_column": "id"}
    with pytest.raises(DataError, match=r"dataset 'crm' \(mysql\+pymysql://vfl:\*\*\*@.*no table 'nowhere'") as info:
        load_dataset(spec, name="crm")
    assert mariadb_server.password not in str(info.value)


def test_loads_from_mysql(mariadb_url, credit):
    write_table(credit, f"{mariadb_url}?table=ds_guest")
    ds = load_dataset({"uri": f"{mariadb_url}?table=ds_guest", "id_column": "id", "label": "y"})
    pd.testing.assert_frame_equal(ds.X, credit.drop(columns=["id", "y"]), check_exact=True)


def test_id_hashes_are_stable_and_width_blind_and_repeats_are_found():
    narrow = pd.Series([-1, 7, -1], dtype=np.int16)
    hashes = id_hashes(narrow)
    assert hashes.dtype == np.uint64
    np.testing.assert_array_equal(hashes, id_hashes(narrow.astype(np.int64)))
    frame = pd.DataFrame({"a": narrow.astype(np.int32), "b": ["x", "y", "x"]})
    np.testing.assert_array_equal(id_hashes(frame), id_hashes(frame.astype({"a": np.int64})))
    assert repeated_hashes(id_hashes(frame).copy()).tolist() == [id_hashes(frame)[0]]
    assert len(repeated_hashes(id_hashes(pd.Series(["a", "b"])).copy())) == 0

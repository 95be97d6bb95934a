"""One reading of the same customers whatever the connector: blanks, id types and labels."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from vfl.connectors import load_dataset, read_table, write_table
from vfl.errors import DataError
from vfl.preprocessing.preprocessor import PartyPreprocessor

PREPROCESSING = {
    "numeric": {"columns": ["age", "income"], "impute": "median", "indicator": True,
                "clip": [0.01, 0.99], "scale": "standard"},
    "categorical": {"columns": ["sex", "region"], "impute": "most_frequent", "encode": "onehot"},
}


def customers(n: int = 60, seed: int = 4) -> pd.DataFrame:
    """Customers with missing numbers and missing categories (None)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "id": np.arange(1, n + 1),
        "y": rng.integers(0, 2, n),
        "age": rng.integers(18, 80, n).astype(np.float64),
        "income": rng.lognormal(8, 1, n).round(2),
        "sex": rng.choice(["M", "F"], n).astype(object),
        "region": rng.choice(["north", "south", "east"], n).astype(object),
    })
    frame.loc[rng.choice(n, 6, replace=False), "age"] = np.nan
    frame.loc[rng.choice(n, 5, replace=False), "sex"] = None
    frame.loc[rng.choice(n, 7, replace=False), "region"] = None
    return frame


def as_csv_text(frame: pd.DataFrame) -> str:
    """The CSV a user exports from a spreadsheet: a missing value is an empty cell."""
    lines = [",".join(frame.columns)]
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                cells.append("")
            elif isinstance(v, float) and v.is_integer():
                cells.append(str(int(v)))
            else:
                cells.append(str(v))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def features(uri: str) -> tuple[pd.DataFrame, dict[str, int]]:
    ds = load_dataset({"uri": uri, "id_column": "id", "label": "y",
                       "categorical": ["sex", "region"]}, name="customers")
    matrix = PartyPreprocessor(config=PREPROCESSING).fit(ds.X).transform(ds.X)
    return matrix, ds.report["nan_counts"]


def test_csv_with_blanks_parquet_and_sql_give_the_same_features(tmp_path, mariadb_url):
    frame = customers()
    csv = tmp_path / "customers.csv"
    csv.write_text(as_csv_text(frame))
    write_table(frame, str(tmp_path / "customers.parquet"))
    in_sql = frame.copy()
    in_sql["region"] = in_sql["region"].fillna("")  # an empty VARCHAR: missing as well
    write_table(in_sql, f"{mariadb_url}?table=same_customers")

    expected_missing = {"age": 6, "sex": 5, "region": 7}
    from_csv, csv_missing = features(str(csv))
    assert csv_missing == expected_missing  # blanks are reported as missing values
    assert not [c for c in from_csv.columns if c.endswith("_")], "no '' category"
    for uri in (str(tmp_path / "customers.parquet"), f"{mariadb_url}?table=same_customers"):
        matrix, missing = features(uri)
        assert missing == expected_missing, uri
        pd.testing.assert_frame_equal(matrix, from_csv, check_exact=True)


def test_na_values_are_configurable_per_dataset(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,y,sex\n1,0,M\n2,1,?\n3,0,F\n4,1,\n")
    spec = {"uri": str(path), "id_column": "id", "label": "y", "categorical": ["sex"]}
    assert load_dataset(spec).report["nan_counts"] == {"sex": 1}
    custom = load_dataset({**spec, "na_values": ["", "?"]})
    assert custom.report["nan_counts"] == {"sex": 2}
    assert custom.X["sex"].isna().tolist() == [False, True, False, True]
    kept = load_dataset({**spec, "na_values": []})
    assert kept.report["nan_counts"] == {} and kept.X["sex"].tolist() == ["M", "?", "F", ""]


def test_a_blank_id_names_the_file_and_row(tmp_path):
    path = tmp_path / "bank.csv"
    path.write_text("id,y,x\nA1,0,1.0\n,1,2.0\nA3,0,3.0\n  ,1,4.0\n")
    with pytest.raises(DataError, match=r"bank\.csv.*blank id in column 'id' at rows 2, 4"):
        load_dataset({"uri": str(path), "id_column": "id", "label": "y"})
    ints = tmp_path / "ints.csv"
    ints.write_text("id,y,x\n1,0,1.0\n2,1,2.0\n,0,3.0\n")
    with pytest.raises(DataError, match=r"ints\.csv.*missing values in id column.*at row 3"):
        load_dataset({"uri": str(ints), "id_column": "id", "label": "y", "id_types": {"id": "int"}})


def test_csv_ids_are_read_as_declared_never_inferred(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,x\n00123,1.0\n0123,2.0\n123,3.0\n")
    ds = load_dataset({"uri": str(path), "id_column": "id"})
    assert ds.id.tolist() == ["00123", "0123", "123"]  # three ids, as written
    # one numeric-looking file and one with a letter in it: both strings, so they can match
    other = tmp_path / "other.csv"
    other.write_text("id,x\n123,1.0\nB7,2.0\n")
    assert load_dataset({"uri": str(other), "id_column": "id"}).id.tolist() == ["123", "B7"]
    declared = load_dataset({"uri": str(path), "id_column": "id", "id_types": {"id": "int"},
                             "duplicates": "keep_first"})
    assert declared.id.tolist() == [123]
    with pytest.raises(DataError, match=r"duplicate id row.*\[123\]"):
        load_dataset({"uri": str(path), "id_column": "id", "id_types": {"id": "int"}})


def test_id_types_convert_parquet_and_sql_ids_exactly(tmp_path):
    write_table(pd.DataFrame({"id": [7, 2**60 + 1], "x": [1.0, 2.0]}), str(tmp_path / "t.parquet"))
    ds = load_dataset({"uri": str(tmp_path / "t.parquet"), "id_column": "id", "id_types": {"id": "str"}})
    assert ds.id.tolist() == ["7", str(2**60 + 1)]
    assert read_table(str(tmp_path / "t.parquet"))["id"].dtype == np.int64  # stored type by default


@pytest.mark.parametrize(("labels", "found"), [
    (["good", "bad", "good", "bad"], r"\['bad', 'good'\]"),
    ([1, 2, 1, 2], r"\['1', '2'\]"),
])
def test_labels_that_are_not_0_1_fail_at_load_naming_column_and_values(tmp_path, labels, found):
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "status": labels, "x": [0.1, 0.2, 0.3, 0.4]})
    write_table(frame, str(tmp_path / "t.csv"))
    start = time.perf_counter()
    with pytest.raises(DataError, match=rf"label column 'status' must be binary 0/1, found values {found}"):
        load_dataset({"uri": str(tmp_path / "t.csv"), "id_column": "id", "label": "status"})
    assert time.perf_counter() - start < 5


def test_positive_label_maps_the_label_to_0_1(tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "status": ["good", "bad", "good", "bad"], "x": [0.1, 0.2, 0.3, 0.4]})
    write_table(frame, str(tmp_path / "t.csv"))
    spec = {"uri": str(tmp_path / "t.csv"), "id_column": "id", "label": "status"}
    ds = load_dataset({**spec, "positive_label": "bad"})
    assert ds.y is not None and ds.y.tolist() == [0, 1, 0, 1] and ds.y.dtype == np.int64
    with pytest.raises(DataError, match=r"positive_label 'default'.*found \['bad', 'good'\]"):
        load_dataset({**spec, "positive_label": "default"})

"""Id validation, duplicates and the canonical type-tagged encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vfl.errors import DataError
from vfl.psi.ids import dedupe, encode_rows, id_columns, id_frame, take


def _rows(frame: pd.DataFrame) -> list[bytes]:
    return encode_rows(id_columns(frame, "t"))


def test_int_and_str_differ_and_whole_floats_are_ints():
    ints = _rows(pd.DataFrame({"id": [1, 2]}))
    assert ints != _rows(pd.DataFrame({"id": ["1", "2"]}))
    assert ints == _rows(pd.DataFrame({"id": [1.0, 2.0]}))
    assert ints == _rows(pd.DataFrame({"id": pd.array([1, 2], dtype="Int64")}))
    assert ints == _rows(pd.DataFrame({"id": np.array([1, 2], dtype=np.uint8)}))
    assert ints == _rows(pd.DataFrame({"id": pd.Series([1, 2], dtype=object)}))


def test_composite_keys_are_unambiguous():
    a = _rows(pd.DataFrame({"x": ["ab"], "y": ["c"]}))
    b = _rows(pd.DataFrame({"x": ["a"], "y": ["bc"]}))
    assert a != b
    assert _rows(pd.DataFrame({"x": [1], "y": ["1"]})) != _rows(pd.DataFrame({"x": ["1"], "y": [1]}))


def test_big_unsigned_and_timestamps_and_bytes():
    big = _rows(pd.DataFrame({"id": np.array([2**64 - 1], dtype=np.uint64)}))
    assert big == _rows(pd.DataFrame({"id": pd.Series([2**64 - 1], dtype=object)}))
    ts = pd.DataFrame({"d": pd.to_datetime(["2024-01-02"])})
    assert _rows(ts) != _rows(pd.DataFrame({"d": ["2024-01-02T00:00:00"]}))
    assert _rows(pd.DataFrame({"id": [b"\x00x"]})) != _rows(pd.DataFrame({"id": ["\x00x"]}))


@pytest.mark.parametrize("values, message", [
    ([1.5, 2.0], "non-integer floats"),
    ([True, False], "boolean"),
    ([1.0, None], "missing values"),
    ([["a"], ["b"]], "ids must be int, str or bytes"),
])
def test_bad_ids_are_refused_naming_the_column(values, message):
    with pytest.raises(DataError, match=message):
        frame = id_frame(pd.DataFrame({"cust": values}), "bank: PSI ids")
        id_columns(frame, "bank: PSI ids")


def test_empty_id_table_is_refused():
    with pytest.raises(DataError, match="empty"):
        id_frame(pd.DataFrame({"id": []}), "w")


def test_duplicates_error_reports_count_and_examples():
    frame = pd.DataFrame({"id": [5, 6, 5, 7, 6, 5]})
    with pytest.raises(DataError, match=r"3 duplicate id row\(s\) in \['id'\], e\.g\. \[5, 6\]"):
        dedupe(frame, "error", "w")
    assert dedupe(frame, "keep_first", "w").tolist() == [0, 1, 3]
    assert dedupe(pd.DataFrame({"a": [1, 1], "b": [1, 2]}), "error", "w").tolist() == [0, 1]


def test_take_keeps_kinds_and_order():
    cols = id_columns(pd.DataFrame({"a": [10, 11, 12], "b": ["x", "y", "z"]}), "w")
    part = take(cols, np.array([2, 0]))
    assert encode_rows(part) == [encode_rows(cols)[2], encode_rows(cols)[0]]

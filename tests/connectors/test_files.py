"""CSV and Parquet files and directories of part files on the local disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vfl.connectors import iter_table, read_table, write_table
from vfl.errors import DataError


def test_reader_matches_pandas_on_shared_csv(credit, shared_data):
    ours = read_table(str(shared_data / "default_credit_hetero_guest.csv"))
    pd.testing.assert_frame_equal(ours, credit, check_exact=True)


def test_relative_paths_and_file_uris_name_the_same_table(tmp_path, monkeypatch, mixed):
    monkeypatch.chdir(tmp_path)
    write_table(mixed, "sub/x.csv")
    pd.testing.assert_frame_equal(read_table(f"file://{tmp_path}/sub/x.csv"), mixed,
                                  check_exact=True)


def test_float64_survives_csv_bit_for_bit(tmp_path):
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2**63, 20_000, dtype=np.int64).view(np.float64)
    values = bits[np.isfinite(bits)]
    write_table(pd.DataFrame({"v": values}), tmp_path / "f.csv")
    back = read_table(str(tmp_path / "f.csv"))["v"].to_numpy()
    assert back.view(np.int64).tolist() == values.view(np.int64).tolist()


def test_spark_style_part_directory(tmp_path, credit):
    folder = tmp_path / "out.csv"  # Spark names directories like files
    folder.mkdir()
    credit.iloc[:100].to_csv(folder / "part-00000-abc.csv", index=False)
    credit.iloc[100:250].to_csv(folder / "part-00001-abc.csv", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000-abc.csv.crc").write_text("crc")
    pd.testing.assert_frame_equal(read_table(str(folder)), credit.iloc[:250], check_exact=True)
    chunks = list(iter_table(str(folder), chunk_rows=60))
    assert [len(c) for c in chunks] == [60, 60, 60, 60, 10]
    pd.testing.assert_frame_equal(pd.concat(chunks), credit.iloc[:250], check_exact=True)


def test_directory_format_comes_from_its_parts(tmp_path, mixed):
    write_table(mixed.iloc[:10], f"{tmp_path}/d?format=parquet")
    write_table(mixed.iloc[10:20], f"{tmp_path}/d", mode="append")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet"]
    pd.testing.assert_frame_equal(read_table(f"{tmp_path}/d"), mixed.iloc[:20], check_exact=True)


def test_format_must_be_known(tmp_path):
    (tmp_path / "table.txt").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"cannot tell the format.*\?format="):
        read_table(str(tmp_path / "table.txt"))
    pd.testing.assert_frame_equal(read_table(f"{tmp_path}/table.txt?format=csv"),
                                  pd.DataFrame({"a": [1], "b": [2]}))
    with pytest.raises(DataError, match="cannot tell the format to write"):
        write_table(pd.DataFrame({"a": [1]}), str(tmp_path / "newdir"))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}/nope.parquet: no such file"):
        read_table(str(tmp_path / "nope.parquet"))


def test_csv_append_aligns_columns_and_refuses_other_ones(tmp_path):
    path = str(tmp_path / "s.csv")
    write_table(pd.DataFrame({"id": [1], "score": [0.5]}), path)
    write_table(pd.DataFrame({"score": [0.25], "id": [2]}), path, mode="append")
    pd.testing.assert_frame_equal(read_table(path),
                                  pd.DataFrame({"id": [1, 2], "score": [0.5, 0.25]}))
    with pytest.raises(DataError, match=r"cannot append columns \['id', 'other'\]"):
        write_table(pd.DataFrame({"id": [3], "other": [1.0]}), path, mode="append")


def test_parquet_append_to_a_single_file_keeps_old_rows_and_types(tmp_path, mixed):
    path = str(tmp_path / "p.parquet")
    write_table(mixed.iloc[:5], path)
    write_table(mixed.iloc[5:9], path, mode="append")
    pd.testing.assert_frame_equal(read_table(path), mixed.iloc[:9], check_exact=True)
    assert not list(tmp_path.glob("*.vfl-tmp"))


def test_failed_replace_keeps_the_old_table(tmp_path):
    path = str(tmp_path / "keep.parquet")
    write_table(pd.DataFrame({"a": [1, 2]}), path)
    with pytest.raises(DataError, match="cannot convert"):
        write_table(pd.DataFrame({"a": [object(), 1]}), path)
    pd.testing.assert_frame_equal(read_table(path), pd.DataFrame({"a": [1, 2]}))


def test_type_change_inside_a_streamed_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "t.csv"
    lines = ["id,v"] + [f"{i},{i}" for i in range(400_000)] + ["400000,not-a-number"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"t\.csv: cannot read csv.*not-a-number"):
        for _ in iter_table(str(path), chunk_rows=50_000):
            pass
    assert read_table(str(path))["v"].dtype != np.int64  # whole-file read infers a string


def test_write_needs_a_dataframe(tmp_path):
    with pytest.raises(DataError, match="only write a pandas DataFrame"):
        write_table([1, 2], str(tmp_path / "x.csv"))  # type: ignore[arg-type]


def test_streams_csv_rows_wider_than_a_read_block(tmp_path):
    """The CSV block grows with the widest first lines: a 300 KB row never straddles blocks."""
    wide = pd.DataFrame({"id": [1, 2, 3], "s": ["x" * 300_000, "y" * 299_000, "z"]})
    write_table(wide, tmp_path / "wide.csv")
    chunks = list(iter_table(str(tmp_path / "wide.csv"), chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 1]
    pd.testing.assert_frame_equal(pd.concat(chunks), wide)

"""HDFS through WebHDFS with the real `hdfs` client against a loopback NameNode/DataNode."""

from __future__ import annotations

import io
import uuid

import pandas as pd
import pytest
from hdfs import InsecureClient

from vfl.connectors import iter_table, read_table, write_table
from vfl.connectors.tables import table_parts
from vfl.errors import DataError


@pytest.fixture
def base(webhdfs) -> str:
    return f"/t{uuid.uuid4().hex[:10]}"


def _client(webhdfs) -> InsecureClient:
    return InsecureClient(f"http://127.0.0.1:{webhdfs.port}", user="loader")


def test_writes_use_the_two_step_redirect(webhdfs, base, credit):
    before = len(webhdfs.requests)
    write_table(credit.head(100), f"{webhdfs.url}{base}/x.csv")
    ops = [(node, op) for node, op, _, _ in webhdfs.requests[before:] if op in ("CREATE",)]
    assert ops == [("namenode", "CREATE"), ("datanode", "CREATE")]
    with _client(webhdfs).read(f"{base}/x.csv", encoding="utf-8") as reader:
        assert reader.read().splitlines()[0] == ",".join(f'"{c}"' for c in credit.columns)


def test_parquet_column_reads_are_ranged(webhdfs, base, credit):
    """Reading one column of fifteen fetches a fraction of the file, not all of it."""
    path = f"{base}/wide.parquet"
    write_table(credit, f"{webhdfs.url}{path}")
    size = _client(webhdfs).status(path)["length"]
    before = len(webhdfs.requests)
    got = read_table(f"{webhdfs.url}{path}", columns=["x5"])
    pd.testing.assert_frame_equal(got, credit[["x5"]], check_exact=True)
    fetched = sum(int(p["length"]) for node, op, _, p in webhdfs.requests[before:]
                  if node == "datanode" and op == "OPEN")
    assert 0 < fetched < size / 3


def test_reads_files_written_by_other_hdfs_tools(webhdfs, base, credit):
    """A Spark-style output directory: part files, a _SUCCESS marker, a nested folder."""
    client = _client(webhdfs)
    for i, part in enumerate([credit.iloc[:40], credit.iloc[40:100]]):
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        client.write(f"{base}/out/part-{i:05d}-x.snappy.parquet", data=buffer.getvalue())
    client.write(f"{base}/out/_SUCCESS", data=b"")
    client.makedirs(f"{base}/out/_temporary")
    chunks = list(iter_table(f"{webhdfs.url}{base}/out", chunk_rows=30))
    assert [len(c) for c in chunks] == [30, 30, 30, 10]
    pd.testing.assert_frame_equal(pd.concat(chunks), credit.iloc[:100], check_exact=True)


def test_user_parameter_reaches_the_namenode(webhdfs, base):
    before = len(webhdfs.requests)
    write_table(pd.DataFrame({"a": [1]}), f"{webhdfs.url}{base}/u.csv?user=etl")
    users = {p.get("user.name") for node, _, _, p in webhdfs.requests[before:] if node == "namenode"}
    assert users == {"etl"}


def test_csv_append_uses_webhdfs_append(webhdfs, base):
    uri = f"{webhdfs.url}{base}/log.csv"
    write_table(pd.DataFrame({"id": [1], "s": [0.5]}), uri)
    before = len(webhdfs.requests)
    write_table(pd.DataFrame({"id": [2], "s": [0.25]}), uri, mode="append")
    assert ("datanode", "APPEND") in [(n, op) for n, op, _, _ in webhdfs.requests[before:]]
    pd.testing.assert_frame_equal(read_table(uri), pd.DataFrame({"id": [1, 2], "s": [0.5, 0.25]}))


def test_namenode_errors_become_data_errors(webhdfs, base):
    with pytest.raises(DataError, match=rf"{base}/absent.csv: no such file"):
        read_table(f"{webhdfs.url}{base}/absent.csv")
    _client(webhdfs).write(f"{base}/file", data=b"x")
    with pytest.raises(DataError, match=r"cannot open for writing: HdfsError: Parent path is not a directory"):
        write_table(pd.DataFrame({"a": [1]}), f"{webhdfs.url}{base}/file/sub?format=csv")


def test_unreachable_namenode_is_named():
    with pytest.raises(DataError, match=r"hdfs://127\.0\.0\.1:1/x\.csv: cannot read: the server is unreachable"):
        read_table("hdfs://127.0.0.1:1/x.csv")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_table_parts_of_a_directory_read_one_after_the_other_are_the_table(webhdfs, base,
                                                                           mixed, fmt):
    """Each part file is a URI of its own, with the user and format of the table's URI.
    (An empty Parquet part keeps its column types; an empty CSV part has none to keep.)"""
    client = _client(webhdfs)
    bounds = [0, 700, 700 if fmt == "parquet" else 701, 1500, 2000]
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        buffer = io.BytesIO()
        if fmt == "parquet":
            mixed.iloc[lo:hi].to_parquet(buffer, index=False)
        else:
            mixed.iloc[lo:hi].to_csv(buffer, index=False)
        client.write(f"{base}/t dir/part-{k:05d}", data=buffer.getvalue())
    client.write(f"{base}/t dir/_SUCCESS", data=b"")
    uri = f"{webhdfs.url}{base}/t%20dir?user=etl&format={fmt}"
    parts = table_parts(uri)
    assert parts == [f"{webhdfs.url}{base}/t%20dir/part-{k:05d}?user=etl&format={fmt}"
                     for k in range(4)]
    whole = read_table(uri, types={"id": "str"})
    before = len(webhdfs.requests)
    frames = [read_table(part, types={"id": "str"}) for part in parts]
    assert [len(f) for f in frames] == [700, *([0, 800] if fmt == "parquet" else [1, 799]), 500]
    assert {p.get("user.name") for node, _, _, p in webhdfs.requests[before:]
            if node == "namenode"} == {"etl"}
    if fmt == "parquet":
        pd.testing.assert_frame_equal(read_table(uri), mixed, check_exact=True)
    joined = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole, check_exact=True)
    assert all((f.dtypes == whole.dtypes).all() for f in frames)


def test_table_parts_of_one_hdfs_file_is_that_file(webhdfs, base, credit):
    write_table(credit.head(10), f"{webhdfs.url}{base}/one.parquet")
    assert table_parts(f"{webhdfs.url}{base}/one.parquet") == \
        [f"{webhdfs.url}{base}/one.parquet?format=parquet"]
    with pytest.raises(DataError, match=rf"{base}/absent: no such file or directory"):
        table_parts(f"{webhdfs.url}{base}/absent")

"""The acceptance round trip: every connector preserves ids, dtypes and values exactly."""

from __future__ import annotations

import logging
import uuid

import numpy as np
import pandas as pd
import pytest

from vfl.connectors import iter_table, open_writer, read_table, write_table
from vfl.connectors.tables import count_rows
from vfl.errors import DataError

SINKS = ["csv", "parquet", "csv-dir", "parquet-dir", "sqlite", "mysql", "hdfs-csv",
         "hdfs-parquet", "hdfs-parquet-dir"]


@pytest.fixture(params=SINKS)
def sink(request, tmp_path):
    """A fresh URI of each kind: local files and part directories, SQLite, MariaDB, HDFS."""
    kind, name = request.param, f"t{uuid.uuid4().hex[:8]}"
    if kind == "csv":
        return f"file://{tmp_path}/{name}.csv"
    if kind == "parquet":
        return str(tmp_path / f"{name}.parquet")
    if kind.endswith("-dir") and not kind.startswith("hdfs"):
        return f"{tmp_path}/{name}?format={kind.split('-')[0]}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/db.sqlite?table={name}"
    if kind == "mysql":
        return request.getfixturevalue("mariadb_url") + f"?table={name}"
    hdfs = request.getfixturevalue("webhdfs").url
    if kind == "hdfs-parquet-dir":
        return f"{hdfs}/{name}?format=parquet"
    return f"{hdfs}/data/{name}.{kind.split('-')[1]}"


def test_default_credit_round_trip_is_exact(credit, sink):
    write_table(credit, sink)
    back = read_table(sink)
    assert list(back.dtypes.astype(str)) == ["int64"] * 2 + ["float64"] * 13
    pd.testing.assert_frame_equal(back, credit, check_exact=True)


def test_streaming_equals_reading_and_respects_chunk_size(credit, sink):
    write_table(credit, sink)
    chunks = list(iter_table(sink, chunk_rows=7_000, columns=["x3", "id"]))
    assert [len(c) for c in chunks] == [7_000] * 4 + [2_000]
    assert all(list(c.columns) == ["x3", "id"] for c in chunks)
    pd.testing.assert_frame_equal(pd.concat(chunks), credit[["x3", "id"]], check_exact=True)


def test_count_rows_where_the_source_tells_them_cheaply(mixed, sink):
    write_table(mixed.iloc[:300], sink)
    write_table(mixed.iloc[300:420], sink, mode="append")  # a second part file in directories
    cheap = "parquet" in sink or sink.startswith(("sqlite", "mysql"))
    assert count_rows(sink) == (420 if cheap else None)
    if sink.startswith(("sqlite", "mysql")):
        assert count_rows(sink.split("?")[0] + "?query=SELECT 1") is None


def test_append_and_replace(mixed, sink):
    write_table(mixed.iloc[:500], sink)
    write_table(mixed.iloc[500:], sink, mode="append")
    pd.testing.assert_frame_equal(read_table(sink), mixed, check_exact=True)
    write_table(mixed.iloc[:3], sink, mode="replace")
    pd.testing.assert_frame_equal(read_table(sink), mixed.iloc[:3], check_exact=True)


def test_chunked_writer_streams_results(mixed, sink):
    """Batch scoring: chunks written one by one into one sink."""
    with open_writer(sink) as writer:
        for start in range(0, len(mixed), 300):
            writer.write(mixed.iloc[start:start + 300])
    assert writer.rows == len(mixed)
    pd.testing.assert_frame_equal(read_table(sink), mixed, check_exact=True)


def test_missing_column_names_the_column(credit, sink):
    write_table(credit.head(10), sink)
    with pytest.raises(DataError, match="nope"):
        read_table(sink, columns=["id", "nope"])


def test_empty_frame_round_trips_its_columns(sink):
    empty = pd.DataFrame({"id": np.array([], dtype=np.int64), "v": np.array([], dtype=float)})
    write_table(empty, sink)
    back = read_table(sink)
    assert list(back.columns) == ["id", "v"] and len(back) == 0


def test_bad_mode_and_bad_chunk_size(sink):
    with pytest.raises(DataError, match="'append' or 'replace'"):
        write_table(pd.DataFrame({"a": [1]}), sink, mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="chunk_rows"):
        next(iter_table(sink, chunk_rows=0))


def test_credentials_never_reach_logs_or_errors(mariadb_server, webhdfs, caplog):
    """Every library logging at DEBUG (vfl, SQLAlchemy, pymysql, hdfs, urllib3) while reading,
    streaming, writing and failing: the password shows up in no record, only ``***``."""
    from urllib.parse import quote

    from vfl.connectors import load_dataset

    caplog.set_level(logging.DEBUG)
    password = mariadb_server.password
    uri = f"{mariadb_server.url}?table=secret_t"
    frame = pd.DataFrame({"id": [1, 2, 3], "v": [0.5, 1.5, 2.5]})
    write_table(frame, uri)
    write_table(frame, uri, mode="append")
    assert len(read_table(uri)) == 6
    assert sum(len(c) for c in iter_table(uri, chunk_rows=2)) == 6
    load_dataset({"uri": uri, "id_column": "id", "duplicates": "keep_first"}, name="crm")
    failures = [
        mariadb_server.url.replace(quote(password, safe=""), quote(password + "x", safe=""))
        + "?table=secret_t",
        f"{mariadb_server.url}?table=absent",
        f"{webhdfs.url}/absent/x.csv?user=etl&token={quote(password, safe='')}",
    ]
    messages = []
    for bad in failures:
        with pytest.raises(DataError) as info:
            read_table(bad)
        messages.append(str(info.value))
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "vfl:***@127.0.0.1" in logged  # vfl's own records name the redacted URI
    for secret in (password, quote(password, safe=""), password + "x"):
        assert secret not in logged
        assert not any(secret in m for m in messages), messages
    assert "token=***" in messages[2]

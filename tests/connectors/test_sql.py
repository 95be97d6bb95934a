"""SQL through SQLAlchemy: a real MariaDB server (mysql+pymysql) and SQLite."""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pandas as pd
import pymysql
import pytest
import sqlalchemy as sa

from vfl.connectors import iter_table, read_table, write_table
from vfl.connectors.tables import count_rows, table_parts
from vfl.errors import DataError


@pytest.fixture(params=["sqlite", "mysql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/x.db"
    return request.getfixturevalue("mariadb_url")


def _execute(url: str, *statements: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            rows: list[tuple] = []
            for statement in statements:
                result = conn.execute(sa.text(statement))
                if result.returns_rows:
                    rows = [tuple(r) for r in result]
            return rows
    finally:
        engine.dispose()


def test_query_url_encoded_with_column_selection(db, credit):
    write_table(credit, f"{db}?table=guest_q")
    query = quote("SELECT id, y, x1 FROM guest_q WHERE y = 1 ORDER BY id", safe="")
    got = read_table(f"{db}?query={query}", columns=["x1", "id"])
    want = credit[credit.y == 1].sort_values("id")[["x1", "id"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_mysql_columns_are_double_and_bigint(mariadb_url, credit):
    write_table(credit.head(3), f"{mariadb_url}?table=types")
    ddl = _execute(mariadb_url, "SHOW CREATE TABLE types")[0][1].lower()
    assert "`id` bigint" in ddl and "`x0` double" in ddl and "float" not in ddl


def test_chunks_keep_declared_types_even_when_all_null(db):
    _execute(db, "DROP TABLE IF EXISTS sparse",
             "CREATE TABLE sparse (id BIGINT, v DOUBLE, n INTEGER, s VARCHAR(10))",
             *[f"INSERT INTO sparse VALUES ({i}, {'NULL' if i < 4 else i / 3}, {i}, 'a{i}')"
               for i in range(8)])
    chunks = list(iter_table(f"{db}?table=sparse", chunk_rows=4))
    assert [str(c["v"].dtype) for c in chunks] == ["float64", "float64"]
    assert [str(c["n"].dtype) for c in chunks] == ["int64", "int64"]
    assert chunks[1]["v"].tolist() == [4 / 3, 5 / 3, 2.0, 7 / 3]
    assert chunks[0]["s"].tolist() == ["a0", "a1", "a2", "a3"]


def test_mysql_streams_with_a_server_side_cursor(mariadb_url, credit):
    """A buffered pymysql cursor would pull the whole result into the client first."""
    write_table(credit, f"{mariadb_url}?table=streamed")
    cursors: list[type] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            cursors.append(type(cursor))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        first = next(iter_table(f"{mariadb_url}?table=streamed", chunk_rows=1000))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert len(first) == 1000
    assert cursors and issubclass(cursors[-1], pymysql.cursors.SSCursor)


def test_wrong_password_is_reported_without_it(mariadb_server):
    bad_password = "Wr0ng-" + mariadb_server.password
    url = mariadb_server.url.replace(quote(mariadb_server.password, safe=""),
                                     quote(bad_password, safe=""))
    with pytest.raises(DataError) as info:
        read_table(f"{url}?table=guest")
    message = str(info.value)
    assert "Access denied" in message and f"127.0.0.1:{mariadb_server.port}/vfl" in message
    assert "vfl:***@" in message
    for secret in (bad_password, quote(bad_password, safe=""), mariadb_server.password):
        assert secret not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unreachable_server_is_named(mariadb_server):
    url = f"mysql+pymysql://vfl:{quote(mariadb_server.password, safe='')}@127.0.0.1:1/vfl?table=t"
    with pytest.raises(DataError, match=r"mysql\+pymysql://vfl:\*\*\*@127\.0\.0\.1:1/vfl") as info:
        read_table(url)
    assert "Can't connect" in str(info.value)
    assert mariadb_server.password not in str(info.value)


def test_missing_table_and_columns(db):
    with pytest.raises(DataError, match="no table 'absent'"):
        read_table(f"{db}?table=absent")
    write_table(pd.DataFrame({"id": [1]}), f"{db}?table=present")
    with pytest.raises(DataError, match=r"missing column\(s\) \['z'\]"):
        read_table(f"{db}?table=present", columns=["id", "z"])


def test_sql_uri_needs_table_or_query(db):
    with pytest.raises(DataError, match=r"needs \?table=NAME or \?query="):
        read_table(db)
    with pytest.raises(DataError, match=r"writing to SQL needs \?table="):
        write_table(pd.DataFrame({"a": [1]}), f"{db}?query=SELECT+1")


def test_missing_driver_is_named_without_secret():
    with pytest.raises(DataError) as info:
        read_table("oracle+nosuchdriver://scott:tiger@127.0.0.1:1/x?table=t")
    assert "scott:***@" in str(info.value) and "tiger" not in str(info.value)


def test_bad_sql_is_reported_without_rows_or_secrets(mariadb_server):
    with pytest.raises(DataError, match="(?i)syntax") as info:
        read_table(f"{mariadb_server.url}?query=SELEC+nonsense")
    assert mariadb_server.password not in str(info.value)


def test_append_grows_the_table_and_nan_becomes_null(db):
    write_table(pd.DataFrame({"id": [1, 2], "v": [0.5, np.nan]}), f"{db}?table=grow")
    write_table(pd.DataFrame({"id": [3], "v": [1e-300]}), f"{db}?table=grow", mode="append")
    assert _execute(db, "SELECT COUNT(*), COUNT(v) FROM grow") == [(3, 2)]
    pd.testing.assert_frame_equal(read_table(f"{db}?table=grow"),
                                  pd.DataFrame({"id": [1, 2, 3], "v": [0.5, np.nan, 1e-300]}),
                                  check_exact=True)


def test_chunks_glued_from_small_fetches_keep_sizes_and_types(tmp_path, monkeypatch):
    """Rows are converted a few at a time (FETCH_ROWS) and glued into chunk_rows chunks; a
    query's untyped columns get the types one conversion of the whole chunk would give."""
    from vfl.connectors import sql

    monkeypatch.setattr(sql, "FETCH_ROWS", 3)
    db = f"sqlite:///{tmp_path}/f.db"
    _execute(db, "CREATE TABLE t (id BIGINT, v DOUBLE, n INTEGER)",
             *[f"INSERT INTO t VALUES ({i}, {'NULL' if i < 5 else i / 4}, "
               f"{'NULL' if i == 8 else 2**60 + i})" for i in range(10)])
    query = quote("SELECT id, v, n FROM t ORDER BY id", safe="")
    want = {"table": [("float64", "int64"), ("float64", "int64"), ("float64", "float64")],
            "query": [("object", "int64"), ("float64", "int64"), ("float64", "float64")]}
    for kind, uri in [("table", f"{db}?table=t"), ("query", f"{db}?query={query}")]:
        chunks = list(iter_table(uri, chunk_rows=4))
        assert [list(c.index) for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        assert [(str(c.v.dtype), str(c.n.dtype)) for c in chunks] == want[kind]
        whole = pd.concat(chunks)
        assert whole.id.tolist() == list(range(10))
        assert whole.v.iloc[5:].tolist() == [i / 4 for i in range(5, 10)]
        assert whole.v.iloc[:5].isna().all() and whole.n.isna().tolist() == [False] * 8 + [True, False]
        # ids above 2^53 next to a NULL (rows 6-8 are fetched together) stay exact
        assert chunks[1].n.tolist() == [2**60 + i for i in range(4, 8)]


# -- a table split into ranges of its ?partition_column= (table_parts) ---------------------


def _partitioned_table(db: str, name: str) -> pd.DataFrame:
    """Ids 0..39 and 1000..1009 (a gap: some ranges are empty), inserted shuffled."""
    rng = np.random.default_rng(5)
    ids = rng.permutation(np.concatenate([np.arange(40), np.arange(1000, 1010)]))
    frame = pd.DataFrame({"cid": ids, "x": rng.standard_normal(len(ids)),
                          "s": [f"s{i}" for i in ids]})
    write_table(frame, f"{db}?table={name}")
    return frame.sort_values("cid", ignore_index=True)


@pytest.mark.parametrize("partitions", [1, 3, 64])
def test_partition_ranges_read_one_after_the_other_are_the_whole_table(db, partitions):
    want = _partitioned_table(db, "ranged")
    uri = f"{db}?table=ranged&partition_column=cid"
    whole = read_table(uri)
    pd.testing.assert_frame_equal(whole, want, check_exact=True)  # in the column's order
    parts = table_parts(f"{uri}&partitions={partitions}")
    assert parts is not None and len(parts) == partitions
    frames = [read_table(part) for part in parts]
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole, check_exact=True)
    assert all((f.dtypes == whole.dtypes).all() for f in frames)
    if partitions == 64:  # 1,010 values in 64 ranges: most hold nothing
        assert sum(len(f) == 0 for f in frames) > 40
    columns = pd.concat([read_table(p, columns=["s", "cid"], types={"cid": "str"})
                         for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(columns, read_table(uri, columns=["s", "cid"],
                                                      types={"cid": "str"}))
    assert [count_rows(p) for p in parts] == [len(f) for f in frames]


def test_partition_ranges_are_bound_parameters(mariadb_url):
    _partitioned_table(mariadb_url, "bound")
    parts = table_parts(f"{mariadb_url}?table=bound&partition_column=cid&partitions=2")
    assert parts is not None and "partition_from=505" in parts[1]
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        read_table(parts[1])
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    statement, parameters = next((s, p) for s, p in seen if "FROM bound" in s)
    assert "505" not in statement and ">= %(cid_1)s" in statement
    assert 505 in dict(parameters).values()


def test_null_partition_values_are_refused(db):
    _execute(db, "DROP TABLE IF EXISTS holes", "CREATE TABLE holes (k BIGINT, v DOUBLE)",
             *[f"INSERT INTO holes VALUES ({'NULL' if i == 7 else i}, {i})" for i in range(12)])
    uri = f"{db}?table=holes&partition_column=k"
    for call in (table_parts, read_table):
        with pytest.raises(DataError, match=r"\?table=holes&partition_column=k: partition_column "
                                            r"'k' holds NULLs; every row needs a value"):
            call(uri)
    # a range never holds a NULL: the rows with a value are read, in their order
    assert read_table(f"{uri}&partition_from=3&partition_below=9").k.tolist() == [3, 4, 5, 6, 8]


def test_an_empty_table_splits_into_empty_ranges(db):
    _execute(db, "DROP TABLE IF EXISTS blank", "CREATE TABLE blank (k BIGINT, v TEXT)")
    parts = table_parts(f"{db}?table=blank&partition_column=k&partitions=3") or []
    frames = [read_table(p) for p in parts]
    assert len(frames) == 3 and all(len(f) == 0 for f in frames)
    assert all(list(f.columns) == ["k", "v"] for f in frames)


def test_a_table_without_a_partition_column_is_read_whole(db):
    write_table(pd.DataFrame({"id": [1, 2]}), f"{db}?table=plain")
    assert table_parts(f"{db}?table=plain") is None
    assert table_parts(f"{db}?query=SELECT+id+FROM+plain") is None


@pytest.mark.parametrize(("options", "message"), [
    ("table=t&partition_column=id&partitions=0", r"partitions= must be a whole number >= 1, got '0'"),
    ("table=t&partition_column=id&partitions=two", r"partitions= must be a whole number >= 1, got 'two'"),
    ("table=t&partition_column=id&partition_from=1.5", r"partition_from= must be a whole number, got '1.5'"),
    ("table=t&partitions=4", r"partitions= needs a partition_column="),
    ("table=t&partition_column=", r"partition_column= names no column"),
    ("query=SELECT+1&partition_column=id", r"partition_column= needs \?table=NAME"),
])
def test_bad_partition_options_are_refused_before_connecting(mariadb_server, options, message):
    """An unreachable server (port 1): the option is refused before any connection."""
    password = quote(mariadb_server.password, safe="")
    uri = f"mysql+pymysql://vfl:{password}@127.0.0.1:1/vfl?{options}"
    for call in (table_parts, read_table, count_rows):
        with pytest.raises(DataError, match=message) as info:
            call(uri)
        assert str(info.value).startswith("mysql+pymysql://vfl:***@127.0.0.1:1/vfl?")
        assert mariadb_server.password not in str(info.value) and password not in str(info.value)


def test_partition_column_missing_or_not_an_integer_is_refused(mariadb_url):
    _partitioned_table(mariadb_url, "typed")
    for column, message in [("absent", r"partition_column 'absent' is not a column of the "
                                       r"table; it has \['cid', 'x', 's'\]"),
                            ("x", r"partition_column 'x' is DOUBLE, not an integer column"),
                            ("s", r"partition_column 's' is TEXT, not an integer column")]:
        uri = f"{mariadb_url}?table=typed&partition_column={column}&partitions=2"
        for call in (table_parts, read_table):
            with pytest.raises(DataError, match=message) as info:
                call(uri)
            assert str(info.value).startswith("mysql+pymysql://vfl:***@127.0.0.1:")

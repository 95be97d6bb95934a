"""SQL through SQLAlchemy: a real MariaDB server (mysql+pymysql) and SQLite."""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pandas as pd
import pymysql
import pytest
import sqlalchemy as sa

from vfl.connectors import iter_table, read_table, write_table
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

import os

import pytest

from vfl.connectors import parse_uri, redact_uri
from vfl.connectors.uri import scrub
from vfl.errors import DataError


@pytest.mark.parametrize(("uri", "expected"), [
    ("mysql+pymysql://bank:s3cret@db.example:3306/crm?table=t",
     "mysql+pymysql://bank:***@db.example:3306/crm?table=t"),
    ("postgresql://u:p%40ss%2F@h/db?query=SELECT+1", "postgresql://u:***@h/db?query=SELECT+1"),
    ("mysql+pymysql://u@h/db?table=t", "mysql+pymysql://u@h/db?table=t"),
    ("hdfs://nn:9870/data/x.csv?user=alice&token=abc", "hdfs://nn:9870/data/x.csv?user=alice&token=***"),
    ("sqlite:///tmp/x.db?table=t", "sqlite:///tmp/x.db?table=t"),
    ("data/x.csv", "data/x.csv"),
])
def test_redact_uri_removes_passwords_and_tokens(uri, expected):
    assert redact_uri(uri) == expected


def test_scrub_removes_raw_and_quoted_password_from_messages():
    uri = "mysql+pymysql://u:p%40ss%2Fw@h/db"
    assert scrub("denied p@ss/w and p%40ss%2Fw", uri) == "denied *** and ***"


def test_file_uris_relative_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = parse_uri("data/x.csv")
    assert (rel.kind, rel.path, rel.format) == ("file", str(tmp_path / "data/x.csv"), "csv")
    absolute = parse_uri(f"file://{tmp_path}/y.PQ")
    assert (absolute.path, absolute.format) == (str(tmp_path / "y.PQ"), "parquet")
    assert parse_uri("part_dir?format=parquet").format == "parquet"
    assert parse_uri("part_dir").format is None
    assert parse_uri("file://localhost/a%20b.csv").path == os.path.abspath("/a b.csv")


def test_hdfs_uri():
    loc = parse_uri("hdfs://namenode:9871/warehouse/x/?user=etl&format=csv")
    assert (loc.kind, loc.host, loc.path, loc.format) == ("hdfs", "namenode:9871", "/warehouse/x/", "csv")
    assert loc.params == {"user": "etl"}
    assert parse_uri("hdfs://nn/x.parquet").host == "nn:9870"


def test_sql_uri_keeps_driver_params_and_takes_its_own():
    loc = parse_uri("mysql+pymysql://u:pw@h/db?charset=utf8mb4&query=SELECT+id+FROM+t")
    assert loc.kind == "sql"
    assert loc.path == "mysql+pymysql://u:pw@h/db?charset=utf8mb4"
    assert loc.params == {"query": "SELECT id FROM t"}


@pytest.mark.parametrize(("uri", "message"), [
    ("", "non-empty"),
    ("x.csv?format=xlsx", "unknown format 'xlsx'"),
    ("mysql+pymysql://u:topsecret@h/db?table=a&query=SELECT+1", "either ?table= or ?query="),
    ("file://otherhost/x.csv", "must be local"),
])
def test_bad_uris_are_data_errors_without_secrets(uri, message):
    with pytest.raises(DataError, match=message.replace("?", r"\?")) as info:
        parse_uri(uri)
    assert "topsecret" not in str(info.value)

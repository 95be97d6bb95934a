"""Fixtures shared across the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.servers import missing, require
from tests.support.shared_data import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout; tests that need it skip (or fail in CI) without it."""
    if not (SHARED_DATA / "default_credit_hetero_guest.csv").exists():
        missing(f"shared data not found at {SHARED_DATA}", "have shared/ beside the clone")
    return SHARED_DATA


# -- connectors: real servers for SQL and HDFS tests (tests/support) ---------------------


@pytest.fixture(scope="session")
def mariadb_server():
    """A throwaway MariaDB server for the session (fails in CI, skips locally, if missing)."""
    from tests.support.mariadb import MariaDBServer, MariaDBUnavailable

    server = require(MariaDBServer().start, MariaDBUnavailable, "provide a real MariaDB server")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_url(mariadb_server) -> str:
    """`mysql+pymysql://user:password@127.0.0.1:PORT/db` of the session's MariaDB server."""
    return mariadb_server.url


@pytest.fixture(scope="session")
def webhdfs():
    """A WebHDFS NameNode + DataNode on loopback over a temp dir (tests/support/webhdfs.py)."""
    from tests.support.webhdfs import WebHdfsServer

    with WebHdfsServer() as server:
        yield server


# -- compute: a party's own Dask cluster (tests/support/dask_cluster.py) -------------------


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and 2 one-thread workers on 127.0.0.1 over TLS, for one test (a test
    may kill a worker)."""
    from tests.support.dask_cluster import dask_cluster

    with dask_cluster(tmp_path / "dask") as cluster:
        yield cluster

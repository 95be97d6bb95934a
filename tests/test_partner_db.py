"""scripts/partner-db.sh (`make partner-db`): a local MariaDB for the examples, reused when
running, reachable with the URL it prints through the project's SQL connector, then stopped."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.support.mariadb import MariaDBUnavailable, binaries
from tests.support.servers import free_port
from vfl.connectors import read_table, write_table

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "partner-db.sh"
EXPORT = re.compile(r"^export PARTNER_DB_URL='(mysql\+pymysql://partner:\w+@127\.0\.0\.1:(\d+)/partner)'$")



def _script(action: str, folder: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
           "PARTNER_DB_DIR": str(folder), "PARTNER_DB_PORT": str(port)}
    return subprocess.run([str(SCRIPT), action], capture_output=True, text=True, env=env, timeout=240)


def _server_pid(folder: Path) -> int:
    return int((folder / "mysqld.pid").read_text())


@pytest.fixture
def folder(tmp_path):
    try:
        binaries()
    except MariaDBUnavailable as exc:
        pytest.skip(str(exc))
    port = free_port()
    yield tmp_path / "db", port
    _script("stop", tmp_path / "db", port)  # whatever the test did, the server it started stops


def test_start_prints_a_url_that_works_then_reuses_the_server_then_stops(folder):
    path, port = folder
    first = _script("start", path, port)
    assert first.returncode == 0, first.stderr
    [line] = first.stdout.splitlines()  # stdout is the export line only: `eval "$(...)"` works
    url, printed_port = EXPORT.match(line).groups()  # type: ignore[union-attr]
    assert int(printed_port) == port and "starting MariaDB on 127.0.0.1" in first.stderr
    pid = _server_pid(path)

    table = pd.DataFrame({"id": [1, 2, 3], "x": [0.5, -1.0, 2.25]})
    write_table(table, url + "?table=customers")
    pd.testing.assert_frame_equal(read_table(url + "?table=customers"), table)

    again = _script("start", path, port)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and "reusing the server" in again.stderr
    assert _server_pid(path) == pid
    pd.testing.assert_frame_equal(read_table(url + "?table=customers"), table)

    stopped = _script("stop", path, port)
    assert stopped.returncode == 0 and "stopped the server" in stopped.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    assert not Path(f"/proc/{pid}").exists()
    assert "no server running" in _script("stop", path, port).stderr


def test_a_stopped_server_starts_again_with_its_data(folder):
    path, port = folder
    url = EXPORT.match(_script("start", path, port).stdout.strip()).group(1)  # type: ignore[union-attr]
    write_table(pd.DataFrame({"id": [7]}), url + "?table=kept")
    assert _script("stop", path, port).returncode == 0
    restarted = _script("start", path, port)
    assert restarted.returncode == 0 and "starting MariaDB" in restarted.stderr
    assert EXPORT.match(restarted.stdout.strip()).group(1) == url  # type: ignore[union-attr]
    assert read_table(url + "?table=kept")["id"].tolist() == [7]

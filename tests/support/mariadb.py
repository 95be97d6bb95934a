"""A throwaway MariaDB server: its own data dir, socket and port on 127.0.0.1.

Used by the test suite (the session fixture ``mariadb_url``) and by walkthroughs that need a
partner's table in a real database:

    with MariaDBServer() as srv:
        write_table(df, srv.url + "?table=features")

The server gets a database and a user with a password (with URL-special characters, so the
URL quoting and the redaction of secrets are exercised). Needs the Debian ``mariadb-server``
binaries (``mariadbd``, ``mariadb-install-db``); works as root (``--user=root``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from typing import Any
from urllib.parse import quote

import pymysql

from tests.support.servers import free_port, stop_process

SERVER_NAMES = ("mariadbd", "mysqld")
INSTALL_NAMES = ("mariadb-install-db", "mysql_install_db")
SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


class MariaDBUnavailable(RuntimeError):
    """The server binaries are not installed."""


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for folder in SEARCH_DIRS:
            path = os.path.join(folder, name)
            if os.access(path, os.X_OK):
                return path
    return None


def binaries() -> tuple[str, str]:
    """(server, install-db) paths; MariaDBUnavailable names the Debian package otherwise."""
    server, install = _find(SERVER_NAMES), _find(INSTALL_NAMES)
    if not server or not install:
        raise MariaDBUnavailable(
            "MariaDB server binaries not found (mariadbd / mariadb-install-db); "
            "install the Debian package mariadb-server (done by .ci/run)")
    return server, install



class MariaDBServer:
    """Start with ``start()`` or ``with``; ``url`` is a SQLAlchemy mysql+pymysql URL."""

    def __init__(self, database: str = "vfl", user: str = "vfl",
                 startup_timeout: float = 60.0) -> None:
        self.database, self.user = database, user
        self.password = "p@ss:" + secrets.token_urlsafe(12) + "/%"
        self.startup_timeout = startup_timeout
        self.port = 0
        self.tmp = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return os.path.join(self.tmp, "mysqld.sock")

    @property
    def url(self) -> str:
        """``mysql+pymysql://user:password@127.0.0.1:port/database`` (password quoted)."""
        return (f"mysql+pymysql://{self.user}:{quote(self.password, safe='')}"
                f"@127.0.0.1:{self.port}/{self.database}")

    def database_url(self, name: str) -> str:
        """The URL of database `name` on this server (created if new), for the same user:
        e.g. one store per party, each shared by that party's replicas."""
        conn = self._root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"GRANT ALL ON `{name}`.* TO %s@'{host}'", (self.user,))
            conn.commit()
        finally:
            conn.close()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    @property
    def error_log(self) -> str:
        path = os.path.join(self.tmp, "error.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as handle:
            return handle.read()[-4000:]

    def start(self) -> MariaDBServer:
        server, install = binaries()
        self.tmp = tempfile.mkdtemp(prefix="mariadb-")
        datadir = os.path.join(self.tmp, "data")
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [install, "--no-defaults", "--auth-root-authentication-method=normal",
             f"--datadir={datadir}", "--skip-test-db", "--skip-name-resolve", *as_root],
            capture_output=True, timeout=180)
        if done.returncode != 0:
            self._cleanup()
            raise RuntimeError(f"mariadb-install-db failed: {done.stderr.decode()[-2000:]}")
        self.port = free_port()
        self.process = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
             f"--pid-file={os.path.join(self.tmp, 'mysqld.pid')}",
             f"--log-error={os.path.join(self.tmp, 'error.log')}",
             "--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=2",
             "--skip-log-bin", "--max-allowed-packet=64M", *as_root],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_ready()
            self._create_user()
        except BaseException:
            self.stop()
            raise
        return self

    def _root(self) -> Any:
        return pymysql.connect(unix_socket=self.socket, user="root", password="",
                               connect_timeout=5)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.process.returncode}:\n"
                                   f"{self.error_log}")
            try:
                self._root().close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd not ready after {self.startup_timeout}s:\n"
                                       f"{self.error_log}") from None
                time.sleep(0.2)

    def _create_user(self) -> None:
        conn = self._root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.database}`")
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"CREATE USER %s@'{host}' IDENTIFIED BY %s",
                                (self.user, self.password))
                    cur.execute(f"GRANT ALL ON `{self.database}`.* TO %s@'{host}'", (self.user,))
            conn.commit()
        finally:
            conn.close()

    def stop(self) -> None:
        stop_process(self.process, grace=30)
        self.process = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> MariaDBServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


if __name__ == "__main__":  # a manual check: start, print the URL, stop on Enter
    with MariaDBServer() as srv:
        print(srv.url, flush=True)
        input("MariaDB running; press Enter to stop\n")

"""A throwaway standalone ZooKeeper server: its own data dir and a free port on 127.0.0.1.

    with ZooKeeperServer() as zk:
        KazooClient(hosts=zk.address)

Needs Debian's ``zookeeper`` package (its jars in /usr/share/java) and a Java runtime;
``scripts/system-deps.sh`` installs both. The admin HTTP server is off; stopping the server
stops only the JVM this object started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.servers import free_port, require, stop_process

JARS = Path("/usr/share/java")
CLASSPATH = ("zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-simple.jar",
             "netty-handler.jar", "netty-transport.jar", "netty-common.jar", "netty-buffer.jar",
             "netty-codec.jar", "netty-resolver.jar", "netty-transport-native-epoll.jar",
             "netty-transport-native-unix-common.jar", "metrics-core.jar", "commons-cli.jar",
             "commons-io.jar", "snappy-java.jar", "jline.jar")
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"


class ZooKeeperUnavailable(RuntimeError):
    """Java or the ZooKeeper jars are not installed."""



def _ruok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"ruok")
            return sock.recv(4) == b"imok"
    except OSError:
        return False


class ZooKeeperServer:
    """Start with ``start()`` or ``with``; ``address`` is ``127.0.0.1:<port>`` for kazoo."""

    def __init__(self, startup_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.port = 0
        self.tmp = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ZooKeeperServer:
        java = shutil.which("java")
        if java is None or not (JARS / "zookeeper.jar").exists():
            raise ZooKeeperUnavailable("java or /usr/share/java/zookeeper.jar not found; install "
                                       "the Debian package zookeeper (scripts/system-deps.sh)")
        self.tmp = tempfile.mkdtemp(prefix="vfl-zk-")
        self.port = free_port()
        config = Path(self.tmp) / "zoo.cfg"
        config.write_text(
            f"dataDir={self.tmp}/data\nclientPort={self.port}\nclientPortAddress=127.0.0.1\n"
            "tickTime=500\nminSessionTimeout=1000\nmaxSessionTimeout=30000\n"
            "admin.enableServer=false\n4lw.commands.whitelist=ruok,stat\n")
        classpath = ":".join(str(JARS / jar) for jar in CLASSPATH if (JARS / jar).exists())
        self.log_path = Path(self.tmp) / "zookeeper.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [java, "-Xmx96m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", classpath,
                 f"-Dzookeeper.log.dir={self.tmp}", MAIN, str(config)],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        deadline = time.monotonic() + self.startup_timeout
        while not _ruok(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.log_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"ZooKeeper did not start:\n{output}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        stop_process(self.process, grace=15, killed_timeout=5)
        self.process = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = ""

    def __enter__(self) -> ZooKeeperServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_zookeeper() -> ZooKeeperServer:
    """A started server; without Debian's zookeeper the test fails in CI and skips locally."""
    return require(ZooKeeperServer().start, ZooKeeperUnavailable, "provide a real ZooKeeper server")

"""A real Dask cluster on 127.0.0.1 for tests: `dask scheduler` and `dask worker` processes
(one thread each, no nanny, so that killing one is a worker lost for good), all over TLS with
certificates from the project's own CA. `stop()` ends only the processes it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vfl.crypto.tls import TlsFiles, create_ca, issue_party_cert

REPO = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).with_name("dask"))


class DaskCluster:
    """Start with ``DaskCluster(folder, workers=2)``; ``address``, ``tls`` (the certificate
    the party's service uses as Dask client), ``kill_worker(i)``, ``stop()``."""

    def __init__(self, folder: Path, workers: int = 2, ca_folder: Path | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        certs = ca_folder or folder / "certs"
        if ca_folder is None:
            create_ca(certs)
        self.tls: TlsFiles = issue_party_cert(certs, "dask-cluster", out_folder=folder / "tls")
        self._scheduler_file = folder / "scheduler.json"
        self._env = dict(os.environ, PYTHONPATH=str(REPO),
                         DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION="True")
        self._logs: list[Any] = []
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--dashboard-address", "127.0.0.1:0")
        self.address = self._wait_for_address()
        self.workers = [self._worker(i) for i in range(workers)]
        self.wait_for_workers(workers)

    def _tls_args(self) -> list[str]:
        return ["--tls-ca-file", str(self.tls.ca), "--tls-cert", str(self.tls.cert),
                "--tls-key", str(self.tls.key)]

    def _start(self, kind: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{kind}-{len(self._logs)}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        return subprocess.Popen(
            [DASK, kind, *args, "--protocol", "tls", *self._tls_args(),
             "--scheduler-file", str(self._scheduler_file)],
            stdout=log, stderr=subprocess.STDOUT, env=self._env, cwd=str(self.folder))

    def _worker(self, i: int) -> subprocess.Popen[bytes]:
        return self._start("worker", "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                           "--no-dashboard", "--name", f"w{i}", "--death-timeout", "30",
                           "--local-directory", str(self.folder / f"w{i}"))

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                break
            try:
                return str(json.loads(self._scheduler_file.read_text())["address"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dask scheduler did not start:\n{self.logs()}")

    def client(self) -> Any:
        from distributed import Client
        from distributed.security import Security

        return Client(self.address, security=Security(
            tls_ca_file=str(self.tls.ca), tls_client_cert=str(self.tls.cert),
            tls_client_key=str(self.tls.key), require_encryption=True), set_as_default=False)

    def wait_for_workers(self, count: int, timeout: float = 90) -> None:
        with self.client() as client:
            try:
                client.wait_for_workers(count, timeout=timeout)
            except TimeoutError as exc:
                raise RuntimeError(f"{count} dask workers did not join:\n{self.logs()}") from exc

    def compute_section(self) -> dict[str, Any]:
        """The party config's ``compute:`` for this cluster."""
        return {"engine": "dask", "scheduler": self.address,
                "tls": {"ca": str(self.tls.ca), "cert": str(self.tls.cert), "key": str(self.tls.key)}}

    def add_worker(self) -> None:
        """One more one-thread worker; returns once it has joined."""
        self.workers.append(self._worker(len(self.workers)))
        self.wait_for_workers(len(self.workers))

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker `i` (no goodbye to the scheduler: a lost worker)."""
        self.workers[i].send_signal(signal.SIGKILL)
        self.workers[i].wait(10)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        for proc in [*getattr(self, "workers", []), self.scheduler]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10  # for all of them together
        for proc in [*getattr(self, "workers", []), self.scheduler]:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in self._logs:
            log.close()


@contextmanager
def dask_cluster(folder: Path, workers: int = 2) -> Iterator[DaskCluster]:
    """A `DaskCluster` for the block; its processes are stopped after it."""
    cluster = DaskCluster(folder, workers)
    try:
        yield cluster
    finally:
        cluster.stop()

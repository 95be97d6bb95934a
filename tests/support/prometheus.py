"""A throwaway Prometheus server (Debian's ``prometheus`` package): its own data dir and a free
port on 127.0.0.1, scraping party services' metrics ports over mutual TLS with a client
certificate of the federation's CA, every second.

    with PrometheusServer([Target("bank", "127.0.0.1:9464")], ca, cert, key) as prom:
        prom.wait_scraped_after(time.time())
        prom.value('vfl_requests_total{kind="grpc"}')

Used by the serving metrics acceptance test (the fixture is in tests/serving/test_prometheus.py,
like the MariaDB server's in tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.servers import free_port, stop_process

SCRAPE_INTERVAL = "1s"


class PrometheusUnavailable(RuntimeError):
    """The prometheus binary is not installed."""


@dataclass(frozen=True)
class Target:
    """A service to scrape: its party name (what its certificate names) and metrics address."""

    party: str
    address: str


def binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if found is None:
        raise PrometheusUnavailable("prometheus not found; install the Debian package prometheus "
                                    "(scripts/system-deps.sh does)")
    return found



class PrometheusServer:
    """Start with ``start()`` or ``with``; `query` / `value` ask its HTTP API."""

    def __init__(self, targets: list[Target], ca: Path, cert: Path, key: Path,
                 startup_timeout: float = 60.0) -> None:
        self.targets, self.ca, self.cert, self.key = targets, ca, cert, key
        self.startup_timeout = startup_timeout
        self.port = 0
        self.tmp = Path()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """One scrape job per party (`vfl-<party>`): https, the client certificate, and the
        party's name as the server name its certificate must hold."""
        return {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                       "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [
                {"job_name": f"vfl-{t.party}", "scheme": "https", "metrics_path": "/metrics",
                 "tls_config": {"ca_file": str(self.ca), "cert_file": str(self.cert),
                                "key_file": str(self.key), "server_name": t.party},
                 "static_configs": [{"targets": [t.address]}]}
                for t in self.targets
            ],
        }

    def log(self) -> str:
        path = self.tmp / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def start(self) -> PrometheusServer:
        command = binary()
        self.tmp = Path(tempfile.mkdtemp(prefix="prometheus-"))
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump(self.config()))
        self.port = free_port()
        log = open(self.tmp / "prometheus.log", "wb")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [command, f"--config.file={self.tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.tmp / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {self.startup_timeout}s:\n{self.log()}")
            time.sleep(0.2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr` now (``/api/v1/query``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])

    def value(self, expr: str) -> float | None:
        """The one value of `expr` (None when it has no series)."""
        result = self.query(expr)
        if len(result) > 1:
            raise AssertionError(f"{expr!r} has {len(result)} series: {result}")
        return float(result[0]["value"][1]) if result else None

    def wait_scraped_after(self, moment: float, timeout: float = 30.0) -> None:
        """Wait until every target was scraped successfully after `moment` (a `time.time()`)."""
        deadline = time.monotonic() + timeout
        jobs = {f"vfl-{t.party}" for t in self.targets}
        while True:
            up = {r["metric"]["job"]: float(r["value"][1]) for r in self.query("up")}
            fresh = {r["metric"]["job"] for r in self.query("timestamp(up)")  # a scrape's start
                     if float(r["value"][1]) > moment and up.get(r["metric"]["job"]) == 1}
            if jobs <= fresh:
                return
            if time.monotonic() > deadline:
                targets = self._targets_health()
                raise AssertionError(f"targets {sorted(jobs - fresh)} not scraped within {timeout}s: "
                                     f"{targets}\n{self.log()}")
            time.sleep(0.2)

    def _targets_health(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as response:
            active = json.loads(response.read())["data"]["activeTargets"]
        return [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError")} for t in active]

    def stop(self) -> None:
        stop_process(self.process, grace=30)
        self.process = None
        if self.tmp != Path() and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

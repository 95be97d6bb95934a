"""Test helpers for the party service: certificates, party configs, `vfl serve` processes, and
small protocols registered for tests (the served parties import this module as a plugin).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.support.servers import free_port, stop_process
from vfl.crypto.tls import create_ca, issue_party_cert
from vfl.parties.config import PartyConfig, load_party_config
from vfl.parties.registry import register

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LOCAL_COMPUTE = {"engine": "local",
                 "workers": int(os.environ.get("VFL_WORKERS", "0")) or os.cpu_count() or 1}
"""What a served party with the default engine reports in its health (its pool's size)."""


# --- protocols for tests ----------------------------------------------------------------------


@register("test-digest")
def digest(ctx: Any, party: Any, params: Any) -> Any:
    """Guest sends an array to every host; each host answers with its SHA-256 and shape."""
    if ctx.role == "guest":
        n = int(params["n"])
        arr = np.random.default_rng(int(params.get("seed", 0))).random(n)
        for host in ctx.hosts:
            ctx.send(host, "array", arr)
        answers = {host: ctx.recv(host, "digest") for host in ctx.hosts}
        return {"expected": hashlib.sha256(arr.tobytes()).hexdigest(), "answers": answers}
    arr = ctx.recv(ctx.guest, "array")
    ctx.send(ctx.guest, "digest", {"sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
                                   "shape": list(arr.shape), "dtype": str(arr.dtype)})
    return None


@register("test-rounds")
def rounds(ctx: Any, party: Any, params: Any) -> Any:
    """`n` ping-pong rounds with a pause: a job that stays mid-flight long enough to kill."""
    n, pause = int(params["rounds"]), float(params.get("pause", 0.1))
    total = 0
    for i in range(n):
        step = ctx.child("round", i)
        if ctx.role == "guest":
            for host in ctx.hosts:
                step.send(host, "x", i)
            total += sum(int(step.recv(host, "y")) for host in ctx.hosts)
        else:
            step.send(ctx.guest, "y", int(step.recv(ctx.guest, "x")) * 2)
            ctx.progress(i + 1, n)
            time.sleep(pause)
    return {"total": total} if ctx.role == "guest" else None


@register("test-dataset")
def read_dataset(ctx: Any, party: Any, params: Any) -> Any:
    """A host role that reads the dataset named in the (guest-controlled) params."""
    if ctx.role == "host":
        ds = party.dataset(str(params["dataset"]))
        ctx.send(ctx.guest, "rows", len(ds.ids))
        return None
    return {h: ctx.recv(h, "rows") for h in ctx.hosts}


@register("test-data-error")
def data_error(ctx: Any, party: Any, params: Any) -> Any:
    """The host fails on its own data with an error quoting a raw value."""
    if ctx.role == "host":
        from vfl.errors import DataError

        raise DataError(f"customer {params['secret']} has a bad value")
    return ctx.recv(ctx.hosts[0], "never")


@register("test-host-refuses")
def host_refuses(ctx: Any, party: Any, params: Any) -> Any:
    """The host stops at once with a reason written for peers; the guest only keeps sending."""
    if ctx.role == "host":
        from vfl.errors import ProtocolError

        raise ProtocolError(f"the host's check failed: {params['reason']}")
    for i in range(int(params.get("sends", 400))):
        for host in ctx.hosts:
            ctx.send(host, "x", i)
        time.sleep(0.05)
    return None


# --- federations on loopback ------------------------------------------------------------------



@dataclass
class Federation:
    """Certificates and party YAMLs for parties on loopback, in one temporary folder."""

    root: Path
    names: list[str]
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        certs = self.root / "certs"
        create_ca(certs)
        for name in self.names:
            issue_party_cert(certs, name)
            self.ports[name] = free_port()

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    def write_config(self, name: str, **overrides: Any) -> Path:
        """A party YAML with mTLS, every other party as peer, a permissive test policy."""
        data: dict[str, Any] = {
            "name": name,
            "listen": f"127.0.0.1:{self.ports[name]}",
            "tls": {"ca": str(self.certs / "ca.pem"), "cert": str(self.certs / f"{name}.pem"),
                    "key": str(self.certs / f"{name}.key")},
            "peers": {p: {"address": f"127.0.0.1:{self.ports[p]}"} for p in self.names if p != name},
            "store": {"path": str(self.root / name / "store")},
            "policy": {"allow": [{"peers": ["*"], "protocols": ["*"], "datasets": ["*"]}],
                       "max_concurrent_jobs": 4},
            "timeouts": {"message": 60, "connect": 3},
            "plugins": ["tests.parties.service_kit"],
        }
        for key, value in overrides.items():
            data[key] = value
        path = self.root / name / "party.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data))
        return path

    def config(self, name: str) -> PartyConfig:
        return load_party_config(self.root / name / "party.yaml")


def party_stub(fed: Federation, identity: str, target: str) -> tuple[Any, Any]:
    """A raw gRPC channel and Party stub to `target`'s service with `identity`'s certificate
    (issued by the federation's CA): for probes the PeerClient would never send."""
    import grpc

    from vfl.parties.proto import vfl_pb2_grpc as pb_grpc

    certs = fed.certs
    credentials = grpc.ssl_channel_credentials(
        (certs / "ca.pem").read_bytes(), (certs / f"{identity}.key").read_bytes(),
        (certs / f"{identity}.pem").read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{fed.ports[target]}", credentials,
                                  options=[("grpc.ssl_target_name_override", target)])
    return channel, pb_grpc.PartyStub(channel)


def tree_state(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """Every file and folder under `root` (but `skip`): kind, mode, size, mtime and content hash,
    to show that a probe created, changed or deleted nothing."""
    state: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
        state[str(path.relative_to(root))] = (path.is_dir(), st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return state


class Served:
    """A `vfl serve` OS process for one party; waits until it accepts connections."""

    def __init__(self, config_path: Path, port: int, log_path: Path, *extra: str) -> None:
        self.config_path, self.port, self.log_path = config_path, port, log_path
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vfl.cli", "serve", "--config", str(config_path), *extra],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
        )
        deadline = time.monotonic() + 30
        while not _listening(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"vfl serve did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        stop_process(self.proc, grace=15, killed_timeout=5)
        self._log.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def submit_and_score_online(fed: Federation, job_path: Path, model_id: str, reports: Path,
                            while_served: Callable[[Any], None] | None = None) -> tuple[dict[str, Any], Any, Any]:
    """Serve the bank and the partner as `vfl serve` processes, submit `job_path` with
    `vfl run --mode submit`, then score the job's test rows online with the bank's certificate
    (and call `while_served(test scores)` before the services stop, for more scoring).

    Returns the job summary, the job's test scores and the online scores.
    """
    import json

    from vfl.connectors import read_table
    from vfl.crypto.tls import TlsFiles
    from vfl.serving.client import ScoringClient

    served = [Served(fed.root / n / "party.yaml", fed.ports[n], job_path.parent / f"{n}.log")
              for n in ("partner", "bank")]
    try:
        run = subprocess.run(
            [sys.executable, "-m", "vfl.cli", "run", str(job_path), "--party",
             str(fed.root / "bank" / "party.yaml"), "--mode", "submit"],
            capture_output=True, text=True, timeout=600, cwd=str(REPO))
        assert run.returncode == 0, run.stderr[-4000:] + served[1].log()[-4000:]
        summary = json.loads(run.stdout)
        trained = read_table(str(reports / summary["job_id"] / "test_scores.csv"))
        tls = TlsFiles(fed.certs / "ca.pem", fed.certs / "bank.pem", fed.certs / "bank.key")
        with ScoringClient(f"127.0.0.1:{fed.ports['bank']}", "bank", tls) as client:
            online = client.score(model_id, trained["id"])
        if while_served is not None:
            while_served(trained)
        return summary, trained, online
    finally:
        for proc in served:
            proc.stop()

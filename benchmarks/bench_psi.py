"""ECDH-PSI, N x N ids with 50 % overlap, two parties over gRPC + mutual TLS on loopback,
against `openmined-psi` (C++ ECDH-PSI) on the same ids in the same run.

The bank (guest) runs in this process with its embedded party service; the partner (host)
is a party service in a separate OS process, each with its own worker pool. Prints one JSON
line: wall time, CPU time per party (process tree: service, role and pool workers), payload
bytes each party sent (codec messages; gRPC/TLS framing not counted), and the ratio to
openmined-psi (client and server in one process, no transport, so its figure is a floor).

    flock /tmp/vfl-bench.lock .venv/bin/python benchmarks/bench_psi.py --n 100000
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.servers import free_port  # noqa: E402
from vfl.crypto.tls import create_ca, issue_party_cert  # noqa: E402
from vfl.parties.config import load_party_config  # noqa: E402
from vfl.parties.context import Context  # noqa: E402
from vfl.parties.executor import shared_process_pool  # noqa: E402
from vfl.parties.federation import connect_federation  # noqa: E402
from vfl.parties.registry import register  # noqa: E402
from vfl.parties.service import PartyService  # noqa: E402
from vfl.psi import ecdh  # noqa: E402

PROTOCOL = "bench-psi"
ROLES = {"bank": "guest", "partner": "host"}
_GOLDEN = 0x9E3779B97F4A7C15  # odd: i -> i * G mod 2^64 is a bijection that looks random


def party_ids(party: str, n: int) -> pd.Series:
    """The bank holds customers [0, n), the partner [n/2, 3n/2): exactly n/2 in common."""
    start = 0 if party == "bank" else n // 2
    scrambled = (np.arange(start, start + n, dtype=np.uint64) * np.uint64(_GOLDEN)).tolist()
    return pd.Series([f"c{v:016x}" for v in scrambled], name="id")


def digest(values: pd.Series) -> str:
    return hashlib.sha256("\n".join(values.tolist()).encode()).hexdigest()


class Counting:
    """A channel wrapper that counts the payload bytes this party sends."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.sent, self._lock = inner, 0, threading.Lock()

    def send(self, sender: str, receiver: str, key: str, payload: bytes) -> None:
        with self._lock:
            self.sent += len(payload)
        self.inner.send(sender, receiver, key, payload)

    def recv(self, receiver: str, sender: str, key: str, timeout: float) -> bytes:
        return self.inner.recv(receiver, sender, key, timeout)


OTHER_PARTIES: set[int] = set()  # pids of party processes started from this one


def tree_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of this process and its descendants, by pid, leaving out
    the other parties' process trees (the partner's service is a child of the bank's)."""
    me = psutil.Process()
    others = set(OTHER_PARTIES)
    for pid in OTHER_PARTIES:
        try:
            others |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
    out = {}
    for p in [me, *me.children(recursive=True)]:
        if p.pid in others:
            continue
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def cpu_since(before: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in tree_cpu().items())


def _run_role(ctx: Context, role: Any, ids: pd.Series, chunk: int, **kw: Any) -> dict[str, Any]:
    counter = Counting(ctx.channel)
    ctx = dataclasses.replace(ctx, channel=counter)
    before, start = tree_cpu(), time.perf_counter()
    result = role(ctx, ids, chunk_size=chunk, **kw)
    return {"wall_s": time.perf_counter() - start, "cpu_s": cpu_since(before),
            "bytes_sent": counter.sent, "size": result.size,
            "aligned_sha256": digest(ids.iloc[result.rows])}


@register(PROTOCOL)
def _partner(ctx: Context, party: Any, params: Any) -> None:
    """The host side, in its own service process: its ids never leave it."""
    n, chunk = int(params["n"]), int(params["chunk"])
    ids = party_ids("partner", n)
    ctx.send(ctx.guest, "ready", True)
    stats = _run_role(ctx.child("psi"), ecdh.host, ids, chunk, min_intersection=1)
    ctx.send(ctx.guest, "stats", stats)


def _serve(config: str, stop: Any) -> None:
    service = PartyService(load_party_config(Path(config))).start()
    stop.wait()
    service.stop()
    shared_process_pool().shutdown()  # a Process joins its children before atexit runs



def federation(root: Path) -> dict[str, Path]:
    """Certificates from vfl.crypto.tls and one party YAML per party (mTLS, loopback)."""
    certs = root / "certs"
    create_ca(certs)
    ports = {name: free_port() for name in ROLES}
    paths = {}
    for name in ROLES:
        issue_party_cert(certs, name)
        config = {
            "name": name, "listen": f"127.0.0.1:{ports[name]}",
            "tls": {"ca": str(certs / "ca.pem"), "cert": str(certs / f"{name}.pem"),
                    "key": str(certs / f"{name}.key")},
            "peers": {p: {"address": f"127.0.0.1:{ports[p]}"} for p in ROLES if p != name},
            "store": {"path": str(root / name / "store")},
            "policy": {"allow": [{"peers": ["*"], "protocols": [PROTOCOL], "datasets": ["*"]}]},
            "timeouts": {"message": 1800, "connect": 10},
        }
        paths[name] = root / name / "party.yaml"
        paths[name].parent.mkdir(parents=True)
        paths[name].write_text(yaml.safe_dump(config))
    return paths


def run_vfl(paths: dict[str, Path], n: int, chunk: int, job: str) -> dict[str, Any]:
    ids = party_ids("bank", n)
    with connect_federation(load_party_config(paths["bank"])) as bank:
        with bank.job(job, PROTOCOL, {"n": n, "chunk": chunk}, ROLES, {}) as ctx:
            ctx.recv("partner", "ready")
            start = time.perf_counter()
            mine = _run_role(ctx.child("psi"), ecdh.guest, ids, chunk)
            wall = time.perf_counter() - start
            theirs = ctx.recv("partner", "stats")
        bank.wait_job("partner", job, 60).raise_for_state()
    if mine["size"] != n // 2 or mine["aligned_sha256"] != theirs["aligned_sha256"]:
        raise AssertionError(f"PSI result wrong: sizes {mine['size']} / {theirs['size']} "
                             f"(expected {n // 2}) or the aligned ids differ")
    return {"wall_s": wall, "cpu_s": {"bank": mine["cpu_s"], "partner": theirs["cpu_s"]},
            "bytes_sent": {"bank": mine["bytes_sent"], "partner": theirs["bytes_sent"]},
            "size": mine["size"]}


def run_openmined(n: int) -> dict[str, Any]:
    """openmined-psi's ECDH-PSI with the same ids: partner = server, bank = client (RAW
    setup, the exact intersection, like ours); 4n scalar multiplications as in ours."""
    import private_set_intersection.python as psi

    client_items, server_items = party_ids("bank", n).tolist(), party_ids("partner", n).tolist()
    cpu, start = time.process_time(), time.perf_counter()
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(0.0, n, server_items, psi.DataStructure.RAW)
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    size = len(client.GetIntersection(setup, response))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if size != n // 2:
        raise AssertionError(f"openmined-psi found {size} common ids, expected {n // 2}")
    wire = sum(len(m.SerializeToString()) for m in (setup, request, response))
    return {"wall_s": wall, "cpu_s": cpu, "bytes_sent": wire, "size": size,
            "version": psi.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="ids per party (100000, 1000000)")
    parser.add_argument("--rounds", type=int, default=1, help="vfl + openmined runs, interleaved")
    parser.add_argument("--chunk", type=int, default=ecdh.CHUNK)
    args = parser.parse_args()

    load_before = os.getloadavg()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-psi-") as tmp:
        paths = federation(Path(tmp))
        spawn = multiprocessing.get_context("spawn")
        stop = spawn.Event()
        partner = spawn.Process(target=_serve, args=(str(paths["partner"]), stop))
        partner.start()
        OTHER_PARTIES.add(partner.pid)
        try:
            for r in range(args.rounds):
                ours = run_vfl(paths, args.n, args.chunk, f"bench-psi-{r}")
                theirs = run_openmined(args.n)
                rounds.append({"vfl": ours, "openmined": theirs})
        finally:
            stop.set()
            partner.join(30)

    def median(get: Any) -> float:
        return float(statistics.median(get(r) for r in rounds))

    vfl_wall = median(lambda r: r["vfl"]["wall_s"])
    om_wall = median(lambda r: r["openmined"]["wall_s"])
    cpu_model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    print(json.dumps({
        "bench": "psi", "n": args.n, "overlap": 0.5, "rounds": args.rounds,
        "transport": "gRPC + mutual TLS, loopback, host in a separate process",
        "vfl": {
            "wall_s": round(vfl_wall, 2),
            "cpu_s": {p: round(median(lambda r, p=p: r["vfl"]["cpu_s"][p]), 2) for p in ROLES},
            "bytes_sent": rounds[0]["vfl"]["bytes_sent"], "size": rounds[0]["vfl"]["size"],
            "chunk": args.chunk, "workers_per_party": int(os.environ.get("VFL_WORKERS", "0"))
            or os.cpu_count(),
        },
        "openmined_psi": {
            "wall_s": round(om_wall, 2),
            "cpu_s": round(median(lambda r: r["openmined"]["cpu_s"]), 2),
            "bytes_sent": rounds[0]["openmined"]["bytes_sent"],
            "version": rounds[0]["openmined"]["version"],
        },
        "speedup_vs_openmined": round(om_wall / vfl_wall, 2),
        "acceptance_1m": {"wall_le_150s": vfl_wall <= 150, "speedup_ge_3": om_wall / vfl_wall >= 3}
        if args.n == 1_000_000 else None,
        "walls_s": {"vfl": [round(r["vfl"]["wall_s"], 2) for r in rounds],
                    "openmined": [round(r["openmined"]["wall_s"], 2) for r in rounds]},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "nproc": os.cpu_count(), "cpu_model": cpu_model, "date": time.strftime("%Y-%m-%d"),
    }))


if __name__ == "__main__":
    main()

"""Serving LR on default_credit: two `vfl serve` processes (bank = guest, partner = host) on
loopback with mutual TLS.

- online: single-id requests to the bank's Score RPC (gRPC + TLS, audit log on), sequential
  latency p50/p99, and requests/s with concurrent clients (each its own channel);
- batch: `vfl score`'s path (`batch_score`: ids + the bank's features from Parquet in chunks,
  the partner's partial results over gRPC + TLS, scores to Parquet) over synthetic ids;
- baseline, same run: the same guest and host scorers called in this process (no network,
  no TLS, no service), for single ids and for the batch;
- ``--case replicas``: throughput and p50/p99 of single-id requests from concurrent clients
  with 1 and with 2 replicas per party (each party's replicas share its model store; the bank
  lists the partner's replicas' addresses and the application the bank's, so the client-side
  balancer spreads the calls), then the latency while one partner replica is SIGKILLed under
  that load (failed requests counted: there should be none).

The model is trained first on the 30,000 default_credit rows (the bank's 13 and the partner's
10 columns; `--mode he` for Paillier, else `insecure_plaintext`, which gives parts of the same
shape and serving cost in far less time). The partner's feature table for serving holds the
30,000 real rows plus the synthetic ids (real partner rows resampled). Prints one JSON line.

    flock /tmp/vfl-bench.lock .venv/bin/python benchmarks/bench_serving.py \\
        [--requests 2000] [--clients 8] [--batch-rows 1000000] [--mode insecure_plaintext]
    flock /tmp/vfl-bench.lock .venv/bin/python benchmarks/bench_serving.py --case replicas \
        [--clients 8] [--per-client 250] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' real servers and fixtures

from tests.support.servers import free_port  # noqa: E402
from vfl.config import JobConfig  # noqa: E402
from vfl.connectors import write_table  # noqa: E402
from vfl.crypto.tls import TlsFiles, create_ca, issue_party_cert  # noqa: E402
from vfl.errors import VflError  # noqa: E402
from vfl.parties.config import load_party_config  # noqa: E402
from vfl.runner import run_simulated  # noqa: E402
from vfl.serving.batch import score_batch  # noqa: E402
from vfl.serving.bundle import ModelBundle  # noqa: E402
from vfl.serving.client import ScoringClient  # noqa: E402
from vfl.serving.online import batch_score  # noqa: E402
from vfl.serving.scoring import GuestScorer, HostScorer, LocalHost  # noqa: E402
from vfl.serving.sources import source_for  # noqa: E402
from vfl.store.models import ModelStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MODEL = "credit"
SYNTHETIC_BASE = 10_000_000  # synthetic ids start here (real ids are 1..30,000)


def log(msg: str) -> None:
    print(f"[bench_serving] {msg}", file=sys.stderr, flush=True)



def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3)}


def prepare(root: Path, batch_rows: int, mode: str) -> dict[str, Any]:
    guest = pd.read_csv(DATA / "default_credit_hetero_guest.csv").sort_values("id").reset_index(drop=True)
    host = pd.read_csv(DATA / "default_credit_hetero_host.csv").sort_values("id").reset_index(drop=True)
    assert (guest["id"].to_numpy() == host["id"].to_numpy()).all()
    g_cols, h_cols = [c for c in guest.columns if c.startswith("x")], [c for c in host.columns if c != "id"]
    write_table(guest, str(root / "bank.parquet"))
    write_table(host, str(root / "partner.parquet"))

    rng = np.random.default_rng(0)
    synthetic = np.arange(SYNTHETIC_BASE, SYNTHETIC_BASE + batch_rows)
    pick_g, pick_h = rng.integers(0, len(guest), batch_rows), rng.integers(0, len(host), batch_rows)
    batch = guest[g_cols].iloc[pick_g].reset_index(drop=True)
    batch.insert(0, "id", synthetic)
    write_table(batch, str(root / "batch.parquet"))
    served = host[h_cols].iloc[pick_h].reset_index(drop=True)
    served.insert(0, "id", synthetic)
    write_table(pd.concat([host, served], ignore_index=True), str(root / "partner_serving.parquet"))

    create_ca(root / "certs")
    for name in ("bank", "partner", "app"):
        issue_party_cert(root / "certs", name)
    ports = {"bank": free_port(), "partner": free_port()}

    def tls(name: str) -> dict[str, str]:
        c = root / "certs"
        return {"ca": str(c / "ca.pem"), "cert": str(c / f"{name}.pem"), "key": str(c / f"{name}.key")}

    def party(name: str, other: str, datasets: dict[str, Any], extra: dict[str, Any]) -> Path:
        body = {"name": name, "listen": f"127.0.0.1:{ports[name]}", "tls": tls(name),
                "peers": {other: {"address": f"127.0.0.1:{ports[other]}"}},
                "store": {"path": str(root / name / "store"), "url": f"sqlite:///{root / name / 'models.db'}",
                          "artifacts": str(root / name / "artifacts")},  # shared by its replicas
                "datasets": datasets, **extra}
        path = root / name / "party.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(body))
        return path

    bank = party("bank", "partner", {
        "credit": {"uri": str(root / "bank.parquet"), "id_column": "id", "label": "y", "features": g_cols}},
        {"serving": {"models": {MODEL: {"dataset": "credit"}}, "clients": ["app"]}})
    partner = party("partner", "bank", {
        "credit": {"uri": str(root / "partner.parquet"), "id_column": "id", "features": h_cols},
        "serving": {"uri": str(root / "partner_serving.parquet"), "id_column": "id", "features": h_cols}},
        {"serving": {"models": {MODEL: {"dataset": "serving"}}},
         "policy": {"allow": [{"peers": ["bank"], "protocols": ["job", "inference"], "datasets": ["*"]}],
                    "allow_insecure": mode == "insecure_plaintext"}})
    job = JobConfig.model_validate({
        "guest": "bank", "hosts": ["partner"], "datasets": {"bank": "credit", "partner": "credit"},
        "parties": {"bank": str(bank), "partner": str(partner)},
        "steps": {"psi": None, "split": None, "evaluate": None, "export": {"model_id": MODEL},
                  "train": {"algorithm": "hetero_lr",
                            "params": {"epochs": 3, "batch_size": 1024, "learning_rate": 0.05,
                                       "optimizer": "adam", "key_bits": 1024, "mode": mode}}},
    })
    start = time.perf_counter()
    outcome = run_simulated(job)
    log(f"trained {MODEL} version {outcome.job_id} ({mode}) in {time.perf_counter() - start:.1f}s")
    return {"bank": bank, "partner": partner, "ports": ports, "guest": guest, "version": outcome.job_id,
            "train_seconds": round(time.perf_counter() - start, 1)}


class Served:
    def __init__(self, config: Path, port: int) -> None:
        self.log = open(config.parent / "serve.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "vfl.cli", "serve", "--config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=str(REPO),
                                     env=dict(os.environ, PYTHONPATH=str(REPO)))
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vfl serve did not start: {(config.parent / 'serve.log').read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wait_ready(client_factory: Any, one_id: int, timeout: float = 180.0) -> None:
    """Until the partner has indexed its feature table and the bank has loaded its part."""
    deadline = time.monotonic() + timeout
    with client_factory() as client:
        while True:
            try:
                client.score(MODEL, [one_id])
                return
            except VflError as exc:
                if time.monotonic() > deadline:
                    raise
                log(f"not ready yet: {exc}")
                time.sleep(1.0)


def online(client_factory: Any, ids: np.ndarray, n: int, warmup: int) -> list[float]:
    with client_factory() as client:
        for i in range(warmup):
            client.score(MODEL, [int(ids[i % len(ids)])])
        out = []
        for i in range(n):
            t = time.perf_counter()
            got = client.score(MODEL, [int(ids[i % len(ids)])])
            out.append((time.perf_counter() - t) * 1e3)
            assert got["missing"].iloc[0] == "", got
    return out


def concurrent(client_factory: Any, ids: np.ndarray, clients: int, per_client: int) -> float:
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            with client_factory() as client:
                client.score(MODEL, [int(ids[k])])
                barrier.wait()
                for i in range(per_client):
                    client.score(MODEL, [int(ids[(k * per_client + i) % len(ids)])])
        except BaseException as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return clients * per_client / (time.perf_counter() - start)


def local_scorer(setup: dict[str, Any]) -> GuestScorer:
    """The same parts and feature sources, called in this process (the baseline)."""
    bank, partner = load_party_config(setup["bank"]), load_party_config(setup["partner"])
    parts = {}
    for config in (bank, partner):
        store = ModelStore.of(config)
        parts[config.name] = ModelBundle.load(store.open(store.get(MODEL)))
    host = HostScorer(parts["partner"], source_for(partner.datasets["serving"], name="serving"))
    return GuestScorer(parts["bank"], [LocalHost("partner", host)],
                       source_for(bank.datasets["credit"], name="credit"))


def replica(config: Path, name: str, port: int, peers: list[str]) -> Path:
    """A copy of a party's YAML for another replica: its own port and local store folder, the
    same shared model store, the peer's replicas at `peers`."""
    body = yaml.safe_load(config.read_text())
    body["listen"] = f"127.0.0.1:{port}"
    body["store"]["path"] = str(config.parent / f"store-{name}")
    (other,) = body["peers"]
    body["peers"] = {other: {"addresses": peers}}
    path = config.with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump(body))
    return path


def timed_load(client_factory: Any, ids: np.ndarray, clients: int, per_client: int,
               during: Any = None) -> dict[str, Any]:
    """`clients` threads x `per_client` single-id scores; `during(done)` is called while they
    run (to kill a replica). Returns requests/s, p50/p99 and every (start, ms, ok) sample."""
    samples: list[tuple[float, float, bool]] = []
    done = [0]

    def run(k: int) -> None:
        with client_factory() as client:
            for i in range(per_client):
                t = time.perf_counter()
                try:
                    got = client.score(MODEL, [int(ids[(k * per_client + i) % len(ids)])])
                    ok = got["missing"].iloc[0] == ""
                except VflError:
                    ok = False
                samples.append((t, (time.perf_counter() - t) * 1e3, ok))
                done[0] += 1

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    if during is not None:
        during(done)
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    return {"rps": round(len(samples) / seconds, 1), **percentiles([ms for _, ms, _ in samples]),
            "failed": sum(not ok for _, _, ok in samples), "samples": samples}


def replicas_case(args: argparse.Namespace) -> dict[str, Any]:
    """Throughput and latency with 1 vs 2 replicas per party, and during a replica's SIGKILL."""
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        root = Path(tmp)
        setup = prepare(root, 1000, args.mode)
        ids = setup["guest"]["id"].sample(frac=1.0, random_state=1).to_numpy()
        certs = root / "certs"
        tls = TlsFiles(certs / "ca.pem", certs / "app.pem", certs / "app.key")
        ports = {name: free_port() for name in ("bank-1", "bank-2", "partner-1", "partner-2")}
        address = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        partners = [address["partner-1"], address["partner-2"]]
        configs = {
            "partner-1": replica(setup["partner"], "partner-1", ports["partner-1"], [address["bank-1"]]),
            "partner-2": replica(setup["partner"], "partner-2", ports["partner-2"], [address["bank-1"]]),
            "bank-single": replica(setup["bank"], "bank-single", ports["bank-1"], partners[:1]),
            "bank-1": replica(setup["bank"], "bank-1", ports["bank-1"], partners),
            "bank-2": replica(setup["bank"], "bank-2", ports["bank-2"], partners),
        }

        def client(*names: str) -> Any:
            return lambda: ScoringClient([address[n] for n in names], "bank", tls)

        served = {"partner-1": Served(configs["partner-1"], ports["partner-1"])}
        try:
            for r in range(args.rounds):
                log(f"round {r + 1}/{args.rounds}: 1 replica per party")
                served["bank-1"] = Served(configs["bank-single"], ports["bank-1"])
                wait_ready(client("bank-1"), int(ids[0]))
                one = timed_load(client("bank-1"), ids, args.clients, args.per_client)
                served.pop("bank-1").stop()
                log(f"round {r + 1}: 2 replicas per party")
                for name in ("partner-2", "bank-1", "bank-2"):
                    served[name] = Served(configs[name], ports[name])
                for name in ("bank-1", "bank-2"):
                    wait_ready(client(name), int(ids[0]))
                two = timed_load(client("bank-1", "bank-2"), ids, args.clients, args.per_client)
                log(f"round {r + 1}: SIGKILL of a partner replica under load")
                killed_at = [0.0]

                def kill(done: list[int], killed_at: list[float] = killed_at) -> None:
                    while done[0] < args.clients * args.per_client // 3:
                        time.sleep(0.01)
                    killed_at[0] = time.perf_counter()
                    served["partner-2"].proc.kill()

                failover = timed_load(client("bank-1", "bank-2"), ids, args.clients, args.per_client, kill)
                window = [ms for t, ms, _ in failover["samples"] if killed_at[0] - 0.5 <= t <= killed_at[0] + 2]
                served.pop("partner-2").stop()
                for name in ("bank-1", "bank-2"):
                    served.pop(name).stop()
                rounds.append({"rps_1_replica": one["rps"], "p50_ms_1_replica": one["p50_ms"],
                               "p99_ms_1_replica": one["p99_ms"], "rps_2_replicas": two["rps"],
                               "p50_ms_2_replicas": two["p50_ms"], "p99_ms_2_replicas": two["p99_ms"],
                               "failover_p99_ms": percentiles(window)["p99_ms"],
                               "failover_max_ms": round(max(window), 1),
                               "failover_requests": len(window), "failover_failed": failover["failed"],
                               "failed_1_or_2_replicas": one["failed"] + two["failed"]})
                log(json.dumps(rounds[-1]))
        finally:
            for proc in served.values():
                proc.stop()
    med = {k: float(np.median([r[k] for r in rounds])) for k in rounds[0]}
    return {"bench": "serving-replicas", "model": "hetero_lr default_credit (13 bank + 10 partner columns)",
            "train_mode": args.mode, "rounds": args.rounds, "clients": args.clients,
            "per_client": args.per_client, "median": med, "per_round": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["single", "replicas"], default="single",
                        help="single: one service per party (online, concurrent, batch); replicas: 1 vs 2 "
                             "replicas per party and a failover")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=250)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    parser.add_argument("--mode", choices=["he", "insecure_plaintext"], default="insecure_plaintext")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    if args.case == "replicas":
        result = replicas_case(args)
        result.update(load_1min=[round(load_start, 2), round(os.getloadavg()[0], 2)], cpus=os.cpu_count())
        print(json.dumps(result))
        return
    rounds: list[dict[str, Any]] = []

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        setup = prepare(root, args.batch_rows, args.mode)
        ids = setup["guest"]["id"].sample(frac=1.0, random_state=1).to_numpy()
        app = root / "certs"
        tls = TlsFiles(app / "ca.pem", app / "app.pem", app / "app.key")
        bank_config = load_party_config(setup["bank"])
        batch_source = str(root / "batch.parquet")
        partner = Served(setup["partner"], setup["ports"]["partner"])
        bank = Served(setup["bank"], setup["ports"]["bank"])
        scorer = local_scorer(setup)

        class Local:
            """The baseline: the same scorers in this process, no network, no TLS, no service."""

            def __enter__(self) -> Local:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

            def score(self, model_id: str, one: list[int]) -> pd.DataFrame:
                return scorer.score(pd.Series(one))

        def grpc_client() -> ScoringClient:
            return ScoringClient(f"127.0.0.1:{setup['ports']['bank']}", "bank", tls)

        try:
            wait_ready(grpc_client, int(ids[0]))
            for r in range(args.rounds):
                log(f"round {r + 1}/{args.rounds}: single-id requests (gRPC + TLS, then in-process)")
                grpc_lat = percentiles(online(grpc_client, ids, args.requests, warmup=100))
                local_lat = percentiles(online(Local, ids, args.requests, warmup=100))
                log(f"round {r + 1}: {args.clients} concurrent clients")
                rps = concurrent(grpc_client, ids, args.clients, args.per_client)
                log(f"round {r + 1}: batch of {args.batch_rows:,} ids (partner's service, then in-process)")
                remote = batch_score(bank_config, MODEL, batch_source, str(root / "scores.parquet"),
                                     chunk_rows=args.chunk_rows)
                assert remote.rows == args.batch_rows and remote.scored == args.batch_rows, remote
                local = score_batch(scorer, batch_source, str(root / "scores_local.parquet"),
                                    id_column="id", version="benchmark", chunk_rows=args.chunk_rows)
                rounds.append({"grpc_p50_ms": grpc_lat["p50_ms"], "grpc_p99_ms": grpc_lat["p99_ms"],
                               "local_p50_ms": local_lat["p50_ms"], "local_p99_ms": local_lat["p99_ms"],
                               "concurrent_rps": round(rps, 1),
                               "batch_grpc_rows_per_s": round(remote.rows_per_second, 1),
                               "batch_local_rows_per_s": round(local.rows_per_second, 1)})
                log(json.dumps(rounds[-1]))
        finally:
            scorer.close()
            bank.stop()
            partner.stop()
        same = (pd.read_parquet(root / "scores.parquet")["score"].to_numpy()
                - pd.read_parquet(root / "scores_local.parquet")["score"].to_numpy())
        max_diff = float(np.abs(same).max())

    med = {k: float(np.median([r[k] for r in rounds])) for k in rounds[0]}
    result = {
        "bench": "serving", "model": "hetero_lr default_credit (13 bank + 10 partner columns)",
        "train_mode": args.mode, "train_seconds": setup["train_seconds"], "rounds": args.rounds,
        "requests_per_round": args.requests, "batch_rows": args.batch_rows, "chunk_rows": args.chunk_rows,
        "median": med,
        "ratio_online_p50_grpc_vs_local": round(med["grpc_p50_ms"] / med["local_p50_ms"], 2),
        "ratio_batch_grpc_vs_local": round(med["batch_grpc_rows_per_s"] / med["batch_local_rows_per_s"], 3),
        "concurrent_clients": args.clients,
        "batch_max_abs_diff_grpc_vs_local": max_diff,
        "acceptance": {"p50_le_10ms": med["grpc_p50_ms"] <= 10, "p99_le_30ms": med["grpc_p99_ms"] <= 30,
                       "batch_ge_20000_rows_per_s": med["batch_grpc_rows_per_s"] >= 20_000},
        "per_round": rounds,
        "load_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

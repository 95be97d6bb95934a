"""Highly available serving: two `vfl serve` replicas of the bank and two of the partner, each
party's replicas sharing one model store (its own MariaDB database plus a shared artifacts
folder) and one job store, found through a real ZooKeeper server (or, across organizations,
through a peer's list of static addresses). Under a load of single-id scores a partner replica
is SIGKILLed: no request fails and no score lacks the partner's part; its registry node
disappears; restarted, it rejoins and takes traffic. A version promoted through one replica of
each party is served by every replica within 5 s, and no response mixes two versions.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.parties import service_kit as kit
from tests.serving.conftest import N_ROWS
from tests.serving.credit import GUEST_FEATURES, HOST_FEATURES, MODEL, credit_tables, preprocessing
from vfl.config import JobConfig
from vfl.connectors import write_table
from vfl.crypto.tls import TlsFiles, issue_party_cert
from vfl.errors import ProtocolError, VflError
from vfl.parties.config import PartyConfig, load_party_config
from vfl.parties.discovery import POLL, ZooKeeperRegistry, close_registries, registry_for
from vfl.parties.grpc_channel import PeerClient
from vfl.runner import run_simulated
from vfl.serving.client import ScoringClient
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.proto import serving_pb2_grpc as spb_grpc
from vfl.serving.stages import move_all
from vfl.store.models import ModelStore

SESSION_TIMEOUT = 2.0  # seconds: a killed replica's node is gone within this (plus a poll)
V2 = "retrained-v2"
PARTIES = ("bank", "partner")


@pytest.fixture(scope="module")
def zookeeper() -> Iterator[Any]:
    from tests.support.zookeeper import start_zookeeper

    server = start_zookeeper()
    yield server
    server.stop()


@dataclass
class Replicas:
    """Two replicas per party, their configs, the registry as the bank sees it."""

    root: Path
    fed: kit.Federation
    version: str
    app_tls: TlsFiles
    ports: dict[tuple[str, int], int]
    partner_ids: np.ndarray  # bank ids the partner has: every score of them needs its part
    served: dict[tuple[str, int], kit.Served] = field(default_factory=dict)

    def config_path(self, party: str, replica: int) -> Path:
        return self.root / party / f"replica-{replica}.yaml"

    def address(self, party: str, replica: int) -> str:
        return f"127.0.0.1:{self.ports[party, replica]}"

    def start(self, party: str, replica: int) -> None:
        self.served[party, replica] = kit.Served(
            self.config_path(party, replica), self.ports[party, replica],
            self.root / party / f"replica-{replica}.log")

    def ensure_all(self) -> None:
        """Every replica up, registered and warm (each bank replica has loaded its part and
        scored once): a test starts from a full, ready set even if an earlier one failed."""
        for key in [k for k in self.ports if k[1] in (1, 2)]:
            if key not in self.served or self.served[key].proc.poll() is not None:
                self.start(*key)
        for party in PARTIES:
            self.wait_registered(party, {self.address(party, i) for i in (1, 2)})
        for i in (1, 2):
            with ScoringClient(self.address("bank", i), "bank", self.app_tls, timeout=60) as client:
                client.score(MODEL, [int(self.partner_ids[0])])

    def registry(self) -> Any:
        return registry_for(load_party_config(self.config_path("bank", 1), datasets=False))

    def wait_registered(self, party: str, addresses: set[str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while set(self.registry().nodes(party)) != addresses:
            assert time.monotonic() < deadline, (party, self.registry().nodes(party), addresses)
            time.sleep(0.1)

    def client(self) -> ScoringClient:
        """A bank application's client: the bank's live replicas from the registry."""
        return ScoringClient.of(load_party_config(self.config_path("bank", 1), datasets=False),
                                self.app_tls, timeout=10.0)


def _write_replica(fed: kit.Federation, party: str, replica: int, port: int, zk: str, store_url: str,
                   **party_settings: Any) -> Path:
    other = "partner" if party == "bank" else "bank"
    path = fed.write_config(
        party, listen=f"127.0.0.1:{port}", peers={other: {}},  # peers found in the registry
        registry={"backend": "zookeeper", "hosts": zk, "session_timeout": SESSION_TIMEOUT},
        store={"path": str(fed.root / party / f"store-{replica}"), "url": store_url,
               "artifacts": str(fed.root / party / "shared-artifacts")},
        **party_settings)
    return path.rename(path.with_name(f"replica-{replica}.yaml"))


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, zookeeper: Any, mariadb_server: Any) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("replicas")
    fed = kit.Federation(root, list(PARTIES))
    guest, host = credit_tables(N_ROWS)
    write_table(guest, str(root / "bank.csv"))
    write_table(host, f"sqlite:///{root / 'partner.db'}?table=features")
    settings = {
        "bank": {
            "datasets": {"credit": {"uri": str(root / "bank.csv"), "id_column": "id", "label": "y",
                                    "id_types": {"id": "int"}, "features": GUEST_FEATURES,
                                    "categorical": ["segment"]}},
            "preprocessing": {"credit": preprocessing("bank")},
            "serving": {"models": {MODEL: {"dataset": "credit"}}, "timeout": 5.0, "clients": ["app"],
                        "audit": False},
        },
        "partner": {
            "datasets": {"credit": {"uri": f"sqlite:///{root / 'partner.db'}?table=features",
                                    "id_column": "id", "features": HOST_FEATURES, "categorical": ["region"]}},
            "preprocessing": {"credit": preprocessing("partner")},
            "serving": {"models": {MODEL: {"dataset": "credit"}}},
            "policy": {"allow": [{"peers": ["bank"], "protocols": ["job", "inference", "promote", "test-rounds"],
                                  "datasets": ["credit"]}]},
        },
    }
    ports = {(p, 1): fed.ports[p] for p in PARTIES} | {(p, 2): kit.free_port() for p in PARTIES}
    urls = {p: mariadb_server.database_url(f"{p}_store_{root.name}".replace("-", "_")) for p in PARTIES}
    for (party, replica), port in ports.items():
        _write_replica(fed, party, replica, port, zookeeper.address, urls[party], **settings[party])

    job = JobConfig.model_validate({
        "guest": "bank", "hosts": ["partner"], "datasets": {"bank": "credit", "partner": "credit"},
        "parties": {p: str(root / p / "replica-1.yaml") for p in PARTIES},
        "steps": {"psi": {}, "split": {"test_size": 0.25, "seed": 3}, "preprocess": {},
                  "train": {"algorithm": "hetero_lr",
                            "params": {"epochs": 2, "batch_size": 128, "learning_rate": 0.1,
                                       "optimizer": "adam", "key_bits": 1024}},
                  "export": {"model_id": MODEL}},
    })
    outcome = run_simulated(job)
    for party in PARTIES:  # a second version of the same parts, staged, for the promotion test
        store = ModelStore.of(load_party_config(root / party / "replica-1.yaml", datasets=False))
        record = store.get(MODEL)
        files = store.open(record)
        store.save(MODEL, V2, role=record.role, kind=record.kind, peers=record.peers,
                   write=lambda target, files=files: shutil.copytree(files, target, dirs_exist_ok=True))

    state = Replicas(root, fed, outcome.job_id, issue_party_cert(fed.certs, "app"), ports,
                     np.intersect1d(guest["id"], host["id"]))
    try:
        state.ensure_all()
        yield state
    finally:
        close_registries()
        for served in state.served.values():
            served.stop()


@dataclass
class Load:
    """`clients` threads scoring one partner-known id per request; every outcome is kept."""

    replicas: Replicas
    clients: int
    requests: int
    client: Any = None  # makes a ScoringClient; default: the bank's replicas from the registry
    results: list[tuple[float, float, Any]] = field(default_factory=list)  # (start, seconds, reply or error)
    done: int = 0

    def run(self) -> threading.Thread:
        def client_loop(seed: int) -> None:
            rng = np.random.default_rng(seed)
            with (self.client or self.replicas.client)() as client:
                for _ in range(self.requests):
                    start = time.monotonic()
                    try:
                        outcome: Any = client.score(MODEL, [int(rng.choice(self.replicas.partner_ids))])
                    except VflError as exc:
                        outcome = exc
                    self.results.append((start, time.monotonic() - start, outcome))
                    self.done += 1

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        waiter = threading.Thread(target=lambda: [t.join() for t in threads])
        waiter.start()
        return waiter

    def failures(self) -> list[Any]:
        return [r for _, _, r in self.results if isinstance(r, Exception)]

    def scores(self) -> list[pd.DataFrame]:
        return [r for _, _, r in self.results if isinstance(r, pd.DataFrame)]


def _p99(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99)) * 1e3 if latencies else float("nan")


def test_partner_replica_killed_under_load_loses_no_request(replicas: Replicas) -> None:
    replicas.ensure_all()
    partners = {replicas.address("partner", i) for i in (1, 2)}
    node = replicas.registry().nodes("partner")[replicas.address("partner", 2)]
    assert node == {"address": replicas.address("partner", 2), "party": "partner",
                    "models": {MODEL: replicas.version}, "health": "ok"}

    load = Load(replicas, clients=4, requests=500)
    waiter = load.run()
    while load.done < 500:
        time.sleep(0.05)
    killed_at = time.monotonic()
    replicas.served["partner", 2].kill()
    waiter.join(timeout=240)
    assert not waiter.is_alive()

    assert len(load.results) == 2000
    assert load.failures() == []
    scores = load.scores()
    assert all(s["missing"].tolist() == [""] and s["score"].notna().all() for s in scores)
    assert all(s.attrs["versions"] == {"bank": replicas.version, "partner": replicas.version} for s in scores)
    window = [d for start, d, _ in load.results if killed_at - 1 <= start <= killed_at + SESSION_TIMEOUT + 2]
    print(f"\nfailover: {len(window)} requests around the kill, p99 {_p99(window):.1f} ms, p50 "
          f"{statistics.median(window) * 1e3:.1f} ms; whole load p99 "
          f"{_p99([d for _, d, _ in load.results]):.1f} ms")

    # the dead replica's node disappears within the session timeout
    deadline = killed_at + SESSION_TIMEOUT + 3
    while replicas.address("partner", 2) in replicas.registry().nodes("partner"):
        assert time.monotonic() < deadline, "the killed replica's registry node is still there"
        time.sleep(0.1)
    assert replicas.registry().replicas("partner") == [replicas.address("partner", 1)]

    # restarted, it registers again and takes traffic: with the other one stopped, every
    # request is answered by it
    replicas.start("partner", 2)
    replicas.wait_registered("partner", partners)
    replicas.served["partner", 1].stop()
    replicas.wait_registered("partner", {replicas.address("partner", 2)})
    after = Load(replicas, clients=2, requests=50)
    after.run().join(timeout=60)
    assert after.failures() == [] and len(after.results) == 100
    assert all(s["missing"].tolist() == [""] for s in after.scores())
    replicas.start("partner", 1)
    replicas.wait_registered("partner", partners)


def _served_versions(replicas: Replicas) -> dict[str, str]:
    """What each replica serves now: the bank's from a score sent to that replica, the
    partner's from its Describe answer to the bank."""
    versions = {}
    for i in (1, 2):
        with ScoringClient(replicas.address("bank", i), "bank", replicas.app_tls, timeout=10) as client:
            try:
                versions[f"bank-{i}"] = client.score(MODEL, [int(replicas.partner_ids[0])]).attrs["version"]
            except VflError as exc:  # a version mismatch while the parties move
                versions[f"bank-{i}"] = f"error: {exc}"
        certs = replicas.fed.certs
        credentials = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes(),
                                                   (certs / "bank.key").read_bytes(),
                                                   (certs / "bank.pem").read_bytes())
        with grpc.secure_channel(replicas.address("partner", i), credentials,
                                 options=[("grpc.ssl_target_name_override", "partner")]) as channel:
            info = spb_grpc.InferenceStub(channel).Describe(
                spb.DescribeRequest(sender="bank", model_id=MODEL), timeout=10)
            versions[f"partner-{i}"] = info.version
    return versions


def test_promotion_reaches_every_replica_and_no_response_mixes_versions(replicas: Replicas) -> None:
    replicas.ensure_all()
    old = replicas.version
    assert set(_served_versions(replicas).values()) == {old}
    load = Load(replicas, clients=2, requests=400)
    waiter = load.run()
    while load.done < 100:
        time.sleep(0.05)
    config = load_party_config(replicas.config_path("bank", 1), datasets=False)
    promoted_at = time.monotonic()
    moved = move_all(config, MODEL, "promote", V2)  # the partner (one replica), then the bank
    assert {(m.party, m.previous, m.version) for m in moved} == {("partner", old, V2), ("bank", old, V2)}
    while set(_served_versions(replicas).values()) != {V2}:
        assert time.monotonic() - promoted_at < 5.0, _served_versions(replicas)
        time.sleep(0.1)
    print(f"\nevery replica serves {V2} {time.monotonic() - promoted_at:.2f}s after the promotion")
    waiter.join(timeout=120)
    assert not waiter.is_alive()

    scores = load.scores()
    pairs = {tuple(sorted(s.attrs["versions"].items())) for s in scores}
    assert pairs <= {(("bank", old), ("partner", old)), (("bank", V2), ("partner", V2))}, pairs
    assert all(s.attrs["version"] == s.attrs["versions"]["bank"] for s in scores)
    assert (("bank", V2), ("partner", V2)) in pairs
    for error in load.failures():  # only while the two parties' stores disagree: named both
        assert old in str(error) and V2 in str(error), error
    print(f"{len(scores)} responses, none mixing versions; {len(load.failures())} refused as a "
          "version mismatch while the parties moved")


def test_a_job_is_run_by_the_one_replica_that_claimed_it(replicas: Replicas) -> None:
    """The partner's replicas share one job store: the same job asked of both runs on the first
    only; the second refuses, naming the replica that holds it."""
    replicas.ensure_all()
    bank = load_party_config(replicas.config_path("bank", 1), datasets=False)
    first, second = (PeerClient(bank, "partner", replicas.address("partner", i)) for i in (1, 2))
    job = dict(job_id="claimed-job", protocol="test-rounds", params={"rounds": 1, "pause": 0.0},
               roles={"bank": "guest", "partner": "host"}, datasets={"bank": [], "partner": []})
    try:
        assert first.start_job(**job).state in ("queued", "running")
        with pytest.raises(ProtocolError, match=f"already claimed by {replicas.address('partner', 1)}"):
            second.start_job(**job)
        assert second.get_job("claimed-job").state in ("queued", "running")  # the shared record
        first.cancel_job("claimed-job")
        deadline = time.monotonic() + 20
        while first.get_job("claimed-job").state != "cancelled":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        first.close()
        second.close()


def test_static_addresses_fail_over_too(replicas: Replicas) -> None:
    """Across organizations without a shared registry: the bank lists the partner's two
    addresses; one is killed under load and no request fails."""
    replicas.ensure_all()
    path = replicas.fed.write_config(
        "bank", listen="127.0.0.1:0", peers={"partner": {"addresses": [replicas.address("partner", i)
                                                                      for i in (1, 2)]}},
        store={"path": str(replicas.root / "bank" / "store-static"),
               "url": load_party_config(replicas.config_path("bank", 1), datasets=False).store.url,
               "artifacts": str(replicas.root / "bank" / "shared-artifacts")},
        **{k: v for k, v in yaml.safe_load(replicas.config_path("bank", 1).read_text()).items()
           if k in ("datasets", "preprocessing", "serving")})
    replicas.ports["bank", 3] = kit.free_port()
    text = path.read_text().replace("127.0.0.1:0", replicas.address("bank", 3))
    path.rename(replicas.config_path("bank", 3)).write_text(text)
    replicas.start("bank", 3)
    try:
        with ScoringClient(replicas.address("bank", 3), "bank", replicas.app_tls, timeout=60) as warm:
            warm.score(MODEL, [int(replicas.partner_ids[0])])  # its part loaded before the load
        load = Load(replicas, clients=2, requests=300, client=lambda: ScoringClient(
            replicas.address("bank", 3), "bank", replicas.app_tls, timeout=10.0))
        waiter = load.run()
        while load.done < 200:
            time.sleep(0.05)
        replicas.served["partner", 1].kill()
        waiter.join(timeout=120)
        assert len(load.results) == 600 and load.failures() == []
        assert all(s["missing"].tolist() == [""] for s in load.scores())
        print(f"\nstatic addresses: p99 {_p99([d for _, d, _ in load.results]):.1f} ms over 600 "
              "requests with a partner replica killed")
    finally:
        replicas.served.pop(("bank", 3)).stop()
        replicas.start("partner", 1)


def test_unreachable_registry_at_start_is_an_error_naming_it(replicas: Replicas) -> None:
    dead = f"127.0.0.1:{kit.free_port()}"
    path = replicas.config_path("partner", 2)
    broken = path.with_name("unreachable.yaml")
    broken.write_text(path.read_text().replace(f"hosts: {load_party_config(path).registry.hosts}",
                                               f"hosts: {dead}").replace("session_timeout: 2.0",
                                                                         "session_timeout: 1.0"))
    run = subprocess.run([sys.executable, "-m", "vfl.cli", "serve", "--config", str(broken)],
                         capture_output=True, text=True, timeout=60, cwd=str(kit.REPO))
    assert run.returncode != 0
    assert f"cannot reach ZooKeeper at {dead}" in run.stderr, run.stderr


def test_a_lost_registry_session_keeps_the_last_known_replicas(caplog: pytest.LogCaptureFixture) -> None:
    """A ZooKeeper of its own (the module's stays up): the bank keeps resolving the partner's
    replica it knew, logs the loss, and reports the session unhealthy."""
    from tests.support.zookeeper import ZooKeeperServer

    with ZooKeeperServer() as zk:
        def config(party: str) -> PartyConfig:
            other = "partner" if party == "bank" else "bank"
            return PartyConfig.model_validate({
                "name": party, "insecure": True, "peers": {other: {}},
                "registry": {"backend": "zookeeper", "hosts": zk.address, "session_timeout": SESSION_TIMEOUT}})

        partner = ZooKeeperRegistry(config("partner"), config("partner").registry)
        bank = ZooKeeperRegistry(config("bank"), config("bank").registry)
        try:
            partner.register("127.0.0.1:7777", lambda: {"models": {}, "health": "ok"})
            deadline = time.monotonic() + 10
            while bank.replicas("partner") != ["127.0.0.1:7777"]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert bank.healthy() and partner.healthy()
            address = zk.address
            with caplog.at_level(logging.WARNING, logger="vfl.registry"):
                zk.stop()
                deadline = time.monotonic() + 10
                while not any(f"ZooKeeper {address} unreachable" in r.getMessage()
                              and "serving from the last known replicas" in r.getMessage()
                              for r in caplog.records):
                    assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
                    assert bank.replicas("partner") == ["127.0.0.1:7777"]
                    time.sleep(POLL)
                assert bank.replicas("partner") == ["127.0.0.1:7777"]
                assert not bank.healthy()
        finally:
            bank.close()
            partner.close()


def test_a_served_replica_is_unready_while_its_registry_session_is_lost(tmp_path: Path) -> None:
    """`vfl serve` with a ZooKeeper registry of its own: ready while the session lives, and
    `vfl health --ready` names the lost registry session once ZooKeeper is gone (liveness
    stays: the replica keeps serving from the last known replicas)."""
    from tests.support.zookeeper import start_zookeeper

    zk = start_zookeeper()
    fed = kit.Federation(tmp_path, list(PARTIES))
    path = fed.write_config("partner", peers={"bank": {}}, metrics={"listen": f"127.0.0.1:{kit.free_port()}"},
                            registry={"backend": "zookeeper", "hosts": zk.address,
                                      "session_timeout": SESSION_TIMEOUT})
    served = kit.Served(path, fed.ports["partner"], tmp_path / "partner.log")
    env = dict(os.environ, PYTHONPATH=str(kit.REPO))

    def ready() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vfl.cli", "health", "--ready", "--config", str(path)],
                              capture_output=True, text=True, env=env, timeout=60)

    try:
        deadline = time.monotonic() + 20
        while (answer := ready()).returncode != 0:
            assert time.monotonic() < deadline, answer.stdout + answer.stderr
            time.sleep(0.5)
        zk.stop()
        deadline = time.monotonic() + 20
        while (answer := ready()).returncode == 0:
            assert time.monotonic() < deadline, "still ready without its registry session"
            time.sleep(0.5)
        assert "registry session lost" in answer.stdout + answer.stderr
        assert served.proc.poll() is None  # alive: liveness is not readiness
    finally:
        served.stop()
        zk.stop()

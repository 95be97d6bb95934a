"""The serving metrics, scraped: a real Prometheus server (Debian's package) scrapes the bank's
and the partner's `vfl serve` metrics ports over mutual TLS with its own certificate of the
federation's CA; a bounded load of online scores (gRPC and HTTP, single ids, some the partner
lacks) shows in its HTTP API as exact counts and as latency histograms. The services' own
metrics ports show every serving metric move (errors, missing ids, versions, readiness); a job
run by the two services shows its steps' and epochs' durations."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import MODEL, Trained
from tests.support.prometheus import PrometheusServer, PrometheusUnavailable, Target
from tests.support.servers import require
from vfl.config import JobConfig
from vfl.errors import UnknownModelError
from vfl.parties.config import load_party_config
from vfl.runner import run_federated
from vfl.serving.cache import Serving

CLIENTS, PER_CLIENT, HTTP_REQUESTS = 4, 40, 30


@pytest.fixture(scope="module")
def prometheus(trained: Trained):
    """Prometheus scraping both parties every second (fails in CI, skips locally, if missing)."""
    certs = trained.fed.certs
    server = PrometheusServer([Target(party, f"127.0.0.1:{port}") for party, port in trained.metrics_ports.items()],
                              certs / "ca.pem", certs / "prometheus.pem", certs / "prometheus.key")
    require(server.start, PrometheusUnavailable, "provide a real Prometheus server")
    yield server
    server.stop()


def scrape(trained: Trained, party: str, path: str = "/metrics", identity: str = "prometheus") -> tuple[int, str]:
    certs = trained.fed.certs
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.load_cert_chain(str(certs / f"{identity}.pem"), str(certs / f"{identity}.key"))
    port = trained.metrics_ports[party]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), 10), server_hostname=party)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def selector(name: str, **labels: str) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def test_prometheus_finds_the_counts_and_latencies_of_a_scoring_load(trained, prometheus):
    version = trained.job_id
    bank = {"job": "vfl-bank", "model": MODEL, "version": version}
    partner = {"job": "vfl-partner", "model": MODEL, "version": version, "kind": "partials"}
    watched = {
        "grpc": selector("vfl_requests_total", **bank, kind="grpc"),
        "http": selector("vfl_requests_total", **bank, kind="http"),
        "grpc_count": selector("vfl_request_seconds_count", **bank, kind="grpc"),
        "grpc_inf": selector("vfl_request_seconds_bucket", **bank, kind="grpc", le="+Inf"),
        "grpc_sum": selector("vfl_request_seconds_sum", **bank, kind="grpc"),
        "grpc_ids": selector("vfl_ids_scored_total", **bank, kind="grpc"),
        "missing": selector("vfl_ids_missing_total", **bank, party="partner"),
        "partials": selector("vfl_requests_total", **partner),
        "partials_count": selector("vfl_request_seconds_count", **partner),
        "partner_lacks": selector("vfl_ids_missing_total", job="vfl-partner", model=MODEL, version=version,
                                  party="partner"),
    }

    def values() -> dict[str, float]:
        return {key: prometheus.value(expr) or 0.0 for key, expr in watched.items()}

    prometheus.wait_scraped_after(time.time())
    before = values()

    rng = np.random.default_rng(7)
    ids = rng.choice(trained.guest["id"].to_numpy(), CLIENTS * PER_CLIENT + HTTP_REQUESTS)
    absent = int(np.isin(ids, trained.host_absent).sum())
    assert 0 < absent < len(ids)  # the load includes ids the partner lacks

    def grpc_client(chunk: np.ndarray) -> list[float]:
        latencies = []
        with trained.scoring_client() as client:
            for one in chunk:
                start = time.perf_counter()
                scored = client.score(MODEL, [int(one)])
                latencies.append(time.perf_counter() - start)
                assert scored.attrs["version"] == version
        return latencies

    grpc_ids = ids[: CLIENTS * PER_CLIENT]
    with ThreadPoolExecutor(CLIENTS) as pool:
        latencies = [t for part in pool.map(grpc_client, np.array_split(grpc_ids, CLIENTS)) for t in part]
    for one in ids[CLIENTS * PER_CLIENT:]:
        connection = http.client.HTTPConnection("127.0.0.1", trained.http_port, timeout=30)
        connection.request("POST", f"/v1/models/{MODEL}/score", json.dumps({"ids": [int(one)]}),
                           {"Content-Type": "application/json"})
        assert connection.getresponse().status == 200
        connection.close()

    prometheus.wait_scraped_after(time.time())
    after = values()
    delta = {key: after[key] - before[key] for key in watched}
    n_grpc = CLIENTS * PER_CLIENT
    assert delta["grpc"] == n_grpc
    assert delta["http"] == HTTP_REQUESTS
    assert delta["grpc_count"] == delta["grpc_inf"] == n_grpc
    assert delta["grpc_ids"] == n_grpc
    assert 0 < delta["grpc_sum"] <= sum(latencies)  # the bank's own share of what the clients waited
    assert delta["missing"] == delta["partner_lacks"] == absent  # as the bank saw it, and the partner
    assert delta["partials"] == delta["partials_count"] == n_grpc + HTTP_REQUESTS  # one call per score

    buckets = selector("vfl_request_seconds_bucket", **bank, kind="grpc")
    median = prometheus.value(f"histogram_quantile(0.5, {buckets})")
    assert median is not None and 0 < median <= 10
    fast = prometheus.value(selector("vfl_request_seconds_bucket", **bank, kind="grpc", le="10.0"))
    assert fast is not None and fast - before["grpc_inf"] == n_grpc  # no request took 10 s
    assert prometheus.value(selector("vfl_model_version", job="vfl-bank", model=MODEL, version=version,
                                     role="guest")) == 1
    assert prometheus.value(selector("vfl_model_version", job="vfl-partner", model=MODEL, version=version,
                                     role="host")) == 1
    assert prometheus.value('vfl_ready{job="vfl-bank"}') == 1
    assert prometheus.value('vfl_ready{job="vfl-partner"}') == 1


def test_errors_are_counted_by_kind_and_unknown_models_add_no_label(trained):
    _, text = scrape(trained, "bank")
    before = sample(text, "vfl_request_errors_total", kind="grpc", error="UnknownModelError")
    before_requests = sample(text, "vfl_requests_total", model="", version="", kind="grpc")
    with trained.scoring_client() as client:
        for name in ("nope-1", "nope-2"):
            with pytest.raises(UnknownModelError):
                client.score(name, [10001])
    _, text = scrape(trained, "bank")
    assert sample(text, "vfl_request_errors_total", kind="grpc", error="UnknownModelError") == before + 2
    assert sample(text, "vfl_requests_total", model="", version="", kind="grpc") == before_requests + 2
    assert "nope-1" not in text and "nope-2" not in text


def test_both_services_are_ready_and_say_so_only_to_listed_scrapers(trained):
    for party in ("bank", "partner"):
        assert scrape(trained, party, "/v1/ready") == (200, '{"status": "ready"}')
        status, body = scrape(trained, party, "/metrics", identity="app")  # a CA certificate, not listed
        assert status == 403 and "vfl_" not in body


def test_a_served_jobs_steps_epochs_and_end_show_in_prometheus(trained, prometheus, tmp_path):
    """PSI, two epochs and a batch score step, run by the served bank and partner: their
    durations and the job's end, as Prometheus scraped them."""
    job = JobConfig.model_validate({
        "guest": "bank", "hosts": ["partner"], "datasets": {"bank": "credit", "partner": "credit"},
        "steps": {
            "psi": {}, "split": {"test_size": 0.25, "seed": 3}, "preprocess": {},
            "train": {"algorithm": "hetero_lr",
                      "params": {"epochs": 2, "batch_size": 128, "learning_rate": 0.1, "key_bits": 1024}},
            "score": {"source": str(trained.root / "bank.csv"), "sink": str(tmp_path / "scores.parquet"),
                      "chunk_rows": 100},
        },
    })
    watched = {
        (party, name, tuple(labels.items())): selector(name, job=f"vfl-{party}", **labels)
        for party in ("bank", "partner")
        for name, labels in (("vfl_step_seconds_count", {"step": "psi", "unit": "points"}),
                             ("vfl_step_seconds_sum", {"step": "psi", "unit": "points"}),
                             ("vfl_jobs_ended_total", {"state": "succeeded"}))
    }
    watched[("bank", "epochs", ())] = selector("vfl_epoch_seconds_count", job="vfl-bank", step="train")
    watched[("bank", "score", ())] = selector("vfl_step_seconds_count", job="vfl-bank", step="score", unit="rows")
    watched[("bank", "score_sum", ())] = selector("vfl_step_seconds_sum", job="vfl-bank", step="score", unit="rows")
    prometheus.wait_scraped_after(time.time())
    before = {key: prometheus.value(expr) or 0.0 for key, expr in watched.items()}
    outcome = run_federated(job, load_party_config(trained.config_path("bank")), submit=True, poll=0.2)
    assert outcome.scored is not None and outcome.scored["rows"] == len(trained.guest)
    prometheus.wait_scraped_after(time.time())
    delta = {key: (prometheus.value(expr) or 0.0) - before[key] for key, expr in watched.items()}
    for party in ("bank", "partner"):
        assert delta[(party, "vfl_jobs_ended_total", (("state", "succeeded"),))] == 1
        assert delta[(party, "vfl_step_seconds_count", (("step", "psi"), ("unit", "points")))] == 1
        assert delta[(party, "vfl_step_seconds_sum", (("step", "psi"), ("unit", "points")))] > 0
    assert delta[("bank", "epochs", ())] == 2
    assert delta[("bank", "score", ())] == 1 and delta[("bank", "score_sum", ())] > 0


@pytest.mark.parametrize("party", ["partner", "bank"])
def test_a_service_is_ready_only_once_its_production_model_is_loaded(trained, party):
    """A fresh serving state (as a replica starting) is not ready until readiness, asked, has
    loaded the production part: the host's with its feature source, the guest's checked with
    the running partner."""
    config = load_party_config(trained.config_path(party))
    config.serving.audit = False
    serving = Serving(config)
    try:
        assert serving.unloaded() == f"model '{MODEL}' version '{trained.job_id}' not loaded yet"
        deadline = time.monotonic() + 60
        while serving.unloaded() is not None:
            assert time.monotonic() < deadline, serving.unloaded()
            time.sleep(0.1)
        serving.prometheus.watch(serving.served_versions)
        role = "host" if party == "partner" else "guest"
        assert serving.prometheus.registry.get_sample_value(
            "vfl_model_version", {"model": MODEL, "version": trained.job_id, "role": role}) == 1
    finally:
        serving.close()


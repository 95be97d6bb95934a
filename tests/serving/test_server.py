"""Online split inference across two `vfl serve` processes (mutual TLS): the bank's Score RPC
and HTTP/JSON endpoint against the trained estimator's scores, per-id missing rows, schema
drift, a hung or dead partner (error within the timeout, or the configured fallback), the
audit log and the metrics.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sqlite3
import ssl
import time

import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from tests.parties import service_kit as kit
from tests.serving.conftest import GUEST_FEATURES, HOST_TIMEOUT, MODEL
from vfl.errors import DataError, PeerError, PeerTimeoutError
from vfl.serving.cache import Serving
from vfl.serving.http_api import serve_http
from vfl.serving.online import load_guest_model
from vfl.store.models import ModelStore

UNKNOWN_ID = 99_999_999


def _url(trained, path: str) -> str:
    return f"http://127.0.0.1:{trained.http_port}{path}"


def _guest_rows(trained, ids) -> pd.DataFrame:
    return trained.guest.set_index("id").loc[list(ids), GUEST_FEATURES].reset_index(drop=True)


def test_grpc_scores_equal_the_trained_estimator(trained):
    expected = trained.expected
    with trained.scoring_client() as client:
        batch = client.score(MODEL, expected["id"])
        single = client.score(MODEL, [int(expected["id"].iloc[0])], request_id="one-id")
        given = client.score(MODEL, expected["id"], features=_guest_rows(trained, expected["id"]))
    assert len(expected) >= 80
    assert batch["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(batch["score"], expected["score"], rtol=0, atol=1e-9)
    assert (batch["missing"] == "").all()
    assert batch.attrs["version"] == trained.job_id
    assert single.attrs["request_id"] == "one-id"
    assert abs(single["score"].iloc[0] - expected["score"].iloc[0]) < 1e-9
    np.testing.assert_allclose(given["score"], expected["score"], rtol=0, atol=1e-9)


def test_http_json_scores_equal_the_trained_estimator(trained):
    expected = trained.expected.head(20)
    ids = [int(i) for i in expected["id"]]
    reply = requests.post(_url(trained, f"/v1/models/{MODEL}/score"),
                          json={"ids": ids, "request_id": "http-1"}, timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["request_id"], body["model_id"], body["version"]) == ("http-1", MODEL, trained.job_id)
    assert [r["id"] for r in body["results"]] == ids
    np.testing.assert_allclose([r["score"] for r in body["results"]], expected["score"], rtol=0, atol=1e-9)
    assert all(r["missing"] == [] for r in body["results"])

    rows = _guest_rows(trained, ids).to_dict(orient="records")
    reply = requests.post(_url(trained, f"/v1/models/{MODEL}/score"),
                          json={"ids": ids, "features": rows}, timeout=30)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose([r["score"] for r in reply.json()["results"]], expected["score"],
                               rtol=0, atol=1e-9)


def test_a_missing_row_is_reported_per_id_never_scored(trained):
    known = int(trained.expected["id"].iloc[0])
    absent = int(trained.host_absent[0])
    ids = [known, absent, UNKNOWN_ID]
    with trained.scoring_client() as client:
        got = client.score(MODEL, ids)
    assert got["missing"].tolist() == ["", "partner", "guest,partner"]
    assert abs(got["score"].iloc[0] - trained.expected["score"].iloc[0]) < 1e-9
    assert got["score"].iloc[1:].isna().all()

    reply = requests.post(_url(trained, f"/v1/models/{MODEL}/score"), json={"ids": ids}, timeout=30)
    results = reply.json()["results"]
    assert [r["missing"] for r in results] == [[], ["partner"], ["guest", "partner"]]
    assert [r["score"] is None for r in results] == [False, True, True]


@pytest.mark.parametrize("drift, message", [
    (lambda X: X.drop(columns="g2"), r"lacks column\(s\) \['g2'\]"),
    (lambda X: X.assign(g0=X["g0"].map(lambda v: f"{v:.3f}")), r"column 'g0' was float64 \(numeric\)"),
    (lambda X: X.assign(segment="Z"), r"column 'segment' has \d+ value\(s\) not seen at fit"),
])
def test_guest_schema_drift_is_an_error(trained, drift, message):
    ids = trained.expected["id"].head(5)
    features = drift(_guest_rows(trained, ids))
    with trained.scoring_client() as client, pytest.raises(DataError, match=message):
        client.score(MODEL, ids, features=features)
    reply = requests.post(_url(trained, f"/v1/models/{MODEL}/score"),
                          json={"ids": [int(i) for i in ids], "features": features.to_dict(orient="list")},
                          timeout=30)
    assert reply.status_code == 422 and reply.json()["kind"] == "DataError"


def test_host_schema_drift_is_an_error_naming_the_host(trained):
    """A partner row with a region its preprocessing never saw: an error, not a score."""
    with sqlite3.connect(trained.root / "partner.db") as db:
        db.execute("INSERT INTO features (id, h0, h1, h2, region) VALUES (?, 0.1, 0.2, 0.3, 'west')",
                   (UNKNOWN_ID - 1,))
    features = _guest_rows(trained, trained.expected["id"].head(1))
    with trained.scoring_client() as client, pytest.raises(DataError) as err:
        client.score(MODEL, [UNKNOWN_ID - 1], features=features)
    assert "partner" in str(err.value) and "region" in str(err.value) and "west" in str(err.value)


def test_a_hung_host_gives_an_error_within_the_timeout(trained):
    ids = trained.expected["id"].head(3)
    trained.partner.proc.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        with trained.scoring_client() as client, pytest.raises(PeerTimeoutError) as err:
            client.score(MODEL, ids)
        elapsed = time.monotonic() - start
        reply = requests.post(_url(trained, f"/v1/models/{MODEL}/score"),
                              json={"ids": [int(i) for i in ids]}, timeout=30)
    finally:
        trained.partner.proc.send_signal(signal.SIGCONT)
    assert HOST_TIMEOUT <= elapsed < HOST_TIMEOUT + 3.0
    assert "partner" in str(err.value) and f"{HOST_TIMEOUT:g}s" in str(err.value)
    assert reply.status_code == 504 and "partner" in reply.json()["error"]


def test_a_dead_host_fails_the_request_or_takes_the_configured_fallback(trained):
    ids = trained.expected["id"].head(4)
    config = trained.fed.config("bank")
    fallback_config = config.model_copy(
        update={"serving": config.serving.model_copy(update={"on_host_error": "missing"})})
    store = ModelStore("bank", config.store.path)
    fallback = load_guest_model(fallback_config, store, MODEL)  # loaded while the partner is up
    try:
        trained.partner.kill()
        start = time.monotonic()
        with trained.scoring_client() as client, pytest.raises(PeerError, match="partner"):
            client.score(MODEL, ids)
        assert time.monotonic() - start < HOST_TIMEOUT + 1.0
        reply = requests.post(_url(trained, f"/v1/models/{MODEL}/score"),
                              json={"ids": [int(i) for i in ids]}, timeout=30)
        assert reply.status_code in (502, 504) and "partner" in reply.json()["error"]

        degraded = fallback.scorer.score(ids)
        assert degraded["score"].isna().all() and (degraded["missing"] == "partner").all()
        assert "partner" in degraded.attrs["host_errors"]
        with pytest.raises(PeerError, match="partner"):  # loading needs every host ...
            load_guest_model(config, store, MODEL)
        late = load_guest_model(fallback_config, store, MODEL)  # ... unless the fallback is on
        try:
            assert (late.scorer.score(ids)["missing"] == "partner").all()
        finally:
            late.close()
    finally:
        fallback.close()
        trained.restart_partner()
    deadline = time.monotonic() + 15
    while True:  # the bank's channel reconnects to the restarted partner by itself
        try:
            with trained.scoring_client() as client:
                back = client.score(MODEL, ids)
            break
        except PeerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    np.testing.assert_allclose(back["score"], trained.expected["score"].head(4), rtol=0, atol=1e-9)


def test_every_prediction_is_audited_and_metrics_are_exposed(trained):
    ids = [int(trained.expected["id"].iloc[0]), int(trained.host_absent[0])]
    reply = requests.post(_url(trained, f"/v1/models/{MODEL}/score"),
                          json={"ids": ids, "request_id": "audit-me"}, timeout=30)
    assert reply.status_code == 200
    engine = sa.create_engine(f"sqlite:///{trained.root / 'bank' / 'store' / 'predictions.db'}")
    query = sa.text("SELECT client, model_id, version, id, score, missing, latency_ms FROM vfl_predictions "
                    "WHERE request_id = 'audit-me' ORDER BY id")
    deadline = time.monotonic() + 10
    rows: list = []
    while len(rows) < 2 and time.monotonic() < deadline:  # written by the service's audit thread
        with engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        time.sleep(0.1)
    engine.dispose()
    assert len(rows) == 2
    by_id = {r.id: r for r in rows}
    scored, absent = by_id[str(ids[0])], by_id[str(ids[1])]
    assert (scored.model_id, scored.version, scored.missing) == (MODEL, trained.job_id, "")
    assert abs(scored.score - trained.expected["score"].iloc[0]) < 1e-9
    assert absent.score is None and absent.missing == "partner"
    assert scored.client.startswith("http:") and scored.latency_ms > 0

    metrics = requests.get(_url(trained, "/v1/metrics"), timeout=10).json()
    assert metrics["requests_by_model"][MODEL] >= 1 and metrics["ids_scored"] >= 2
    assert metrics["latency_ms_p50"] > 0 and metrics["latency_ms_p99"] >= metrics["latency_ms_p50"]
    health = requests.get(_url(trained, "/v1/health"), timeout=10).json()
    assert health == {"status": "ok"}  # liveness only: open to anyone, so it carries no data


def _https_post(trained, port: int, body: dict, identity: str | None) -> tuple[int, dict]:
    """POST over TLS to the bank's HTTP endpoint, verifying its certificate names 'bank'."""
    context = ssl.create_default_context(cafile=str(trained.fed.certs / "ca.pem"))
    if identity is not None:
        context.load_cert_chain(str(trained.fed.certs / f"{identity}.pem"), str(trained.fed.certs / f"{identity}.key"))
    conn = http.client.HTTPSConnection("bank", port, context=context, timeout=30)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="bank")
    try:
        conn.request("POST", f"/v1/models/{MODEL}/score", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def test_http_over_mutual_tls_serves_only_the_configured_clients(trained):
    port = kit.free_port()
    config = trained.fed.config("bank")
    config = config.model_copy(update={"serving": config.serving.model_copy(update={
        "http_listen": f"127.0.0.1:{port}", "http_tls": True, "clients": ["app"], "audit": False})})
    serving = Serving(config)
    http = serve_http(serving)
    assert http is not None and http.port == port
    try:
        ids = [int(i) for i in trained.expected["id"].head(3)]
        status, body = _https_post(trained, port, {"ids": ids}, "app")
        assert status == 200, body
        np.testing.assert_allclose([r["score"] for r in body["results"]], trained.expected["score"].head(3),
                                   rtol=0, atol=1e-9)
        status, body = _https_post(trained, port, {"ids": ids}, "partner")  # a valid certificate, not a client
        assert status == 403 and "'partner' is not in serving.clients" in body["error"]
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _https_post(trained, port, {"ids": ids}, None)  # no client certificate: no handshake
        with socket.create_connection(("127.0.0.1", port)):  # a client that never says hello ...
            status, _ = _https_post(trained, port, {"ids": ids}, "app")  # ... blocks no one else
        assert status == 200
    finally:
        http.close()
        serving.close()


def test_the_partner_preloads_its_part_and_feature_source_at_start(trained):
    deadline = time.monotonic() + 10
    while f"host part of '{MODEL}' version '{trained.job_id}' ready" not in trained.partner.log():
        assert time.monotonic() < deadline, trained.partner.log()
        time.sleep(0.1)

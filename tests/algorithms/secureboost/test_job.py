"""SecureBoost through a job, as every registered algorithm: `steps.train.algorithm:
secureboost`, evaluation and its report, export to each party's model store, and scoring
(the job's batch step, `vfl score`, online over gRPC and HTTPS) with each host answering the
routing bits of its nodes in one round trip per request; the scores equal the trained model's."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from tests.parties import service_kit as kit
from vfl.config import load_job_config
from vfl.connectors import read_table
from vfl.errors import ConfigError
from vfl.runner import run_simulated
from vfl.serving.bundle import ModelBundle
from vfl.store.models import ModelStore

MODEL_ID = "breast-sb"
PARAMS = {"n_estimators": 4, "max_depth": 3, "learning_rate": 0.3, "max_bin": 16, "key_bits": 1024}


def _write_job(tmp: Path, params: dict[str, Any], hosts: tuple[str, ...] = ("partner",)) -> Path:
    """Breast cancer data: the bank holds the label and 10 columns, the hosts the other 20
    (split between them), each in its own row order."""
    data = load_breast_cancer(as_frame=True)
    X = data.frame.drop(columns="target")
    X.columns = [f"x{i}" for i in range(X.shape[1])]
    ids = pd.Series(np.arange(len(X)), name="id")
    guest = pd.concat([ids, data.frame["target"].rename("y"), X.iloc[:, :10]], axis=1)
    guest.to_csv(tmp / "bank.csv", index=False)
    g_cols = list(guest.columns[2:])
    bodies: dict[str, dict[str, Any]] = {"bank": {
        "name": "bank",
        "datasets": {"credit": {"uri": str(tmp / "bank.csv"), "id_columns": ["id"], "label": "y",
                                "id_types": {"id": "int"}, "features": g_cols}},
        "preprocessing": {"credit": {"numeric": {"columns": g_cols}}},
        "store": {"path": str(tmp / "bank-store")}}}
    for i, (name, cols) in enumerate(zip(hosts, np.array_split(np.arange(10, 30), len(hosts)), strict=True)):
        host = pd.concat([ids, X.iloc[:, cols]], axis=1).sample(frac=1.0, random_state=i + 1)  # other order
        host.to_csv(tmp / f"{name}.csv", index=False)
        h_cols = list(host.columns[1:])
        bodies[name] = {
            "name": name,
            "datasets": {"credit": {"uri": str(tmp / f"{name}.csv"), "id_columns": ["id"],
                                    "id_types": {"id": "int"}, "features": h_cols}},
            "preprocessing": {"credit": {"numeric": {"columns": h_cols}}},
            "store": {"path": str(tmp / f"{name}-store")},
            "policy": {"allow": [{"peers": ["bank"], "protocols": ["job", "inference"], "datasets": ["credit"]}],
                       "min_intersection": 100}}
    job = {"guest": "bank", "hosts": list(hosts), "datasets": {p: "credit" for p in bodies},
           "parties": {p: f"{p}.yaml" for p in bodies},
           "steps": {"psi": {}, "split": {"test_size": 0.2, "seed": 42}, "preprocess": {},
                     "train": {"algorithm": "secureboost", "params": params},
                     "evaluate": {"out_dir": str(tmp / "reports"), "iv": False},
                     "export": {"model_id": MODEL_ID},
                     "score": {"source": str(tmp / "bank.csv"), "sink": str(tmp / "scores.csv")}}}
    for name, body in [*((f"{p}.yaml", b) for p, b in bodies.items()), ("job.yaml", job)]:
        (tmp / name).write_text(yaml.safe_dump(body, sort_keys=False))
    return tmp / "job.yaml"


def test_a_simulated_job_trains_evaluates_exports_and_batch_scores(tmp_path: Path) -> None:
    outcome = run_simulated(load_job_config(_write_job(tmp_path, PARAMS)))
    assert outcome.metrics["auc"] > 0.95, outcome.metrics
    reports = tmp_path / "reports" / outcome.job_id
    trained = read_table(str(reports / "test_scores.csv")).set_index("id")
    assert json.loads((reports / "metrics.json").read_text())["auc"] == outcome.metrics["auc"]
    assert "<html" in (reports / "report.html").read_text().lower()
    batch = read_table(str(tmp_path / "scores.csv")).set_index("id")
    np.testing.assert_allclose(batch.loc[trained.index, "score"], trained["score"], rtol=0, atol=1e-6)
    parts = {}
    for party in ("bank", "partner"):
        store = ModelStore(party, tmp_path / f"{party}-store")
        parts[party] = ModelBundle.load(store.open(store.get(MODEL_ID))).part
    assert parts["bank"].kind == parts["partner"].kind == "secureboost"
    assert parts["bank"].hosts == ["partner"] and len(parts["partner"].feature) > 0
    assert np.all(parts["bank"].threshold[parts["bank"].owner == 1] == 0)  # no host threshold on the guest


def test_a_job_with_two_hosts_scores_in_batch_as_it_evaluated(tmp_path: Path) -> None:
    """Hosts listed out of name order: the guest part routes each host's bits to its own nodes."""
    outcome = run_simulated(load_job_config(_write_job(tmp_path, PARAMS, hosts=("zeta", "alpha"))))
    assert outcome.metrics["auc"] > 0.95, outcome.metrics
    trained = read_table(str(tmp_path / "reports" / outcome.job_id / "test_scores.csv")).set_index("id")
    batch = read_table(str(tmp_path / "scores.csv")).set_index("id")
    np.testing.assert_allclose(batch.loc[trained.index, "score"], trained["score"], rtol=0, atol=1e-6)
    store = ModelStore("bank", tmp_path / "bank-store")
    guest = ModelBundle.load(store.open(store.get(MODEL_ID))).part
    assert guest.hosts == ["alpha", "zeta"] and {1, 2} <= set(guest.owner.tolist())  # both hosts split


def test_job_params_are_checked_when_the_job_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter 'n_estimator'; did you mean 'n_estimators'"):
        load_job_config(_write_job(tmp_path, {"n_estimator": 3}))
    with pytest.raises(ConfigError, match=r"subsample must be a number in \(0, 1\]"):
        load_job_config(_write_job(tmp_path, {"subsample": 1.5}))
    with pytest.raises(ConfigError, match="only in mode 'he'"):
        load_job_config(_write_job(tmp_path, {"mode": "insecure_plaintext"}))


def _https_score(fed: kit.Federation, port: int, ids: list[int]) -> list[float]:
    context = ssl.create_default_context(cafile=str(fed.certs / "ca.pem"))
    context.load_cert_chain(str(fed.certs / "bank.pem"), str(fed.certs / "bank.key"))
    conn = http.client.HTTPSConnection("bank", port, context=context, timeout=60)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="bank")
    try:
        conn.request("POST", f"/v1/models/{MODEL_ID}/score", body=json.dumps({"ids": ids}),
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        body = json.loads(reply.read())
        assert reply.status == 200, body
        return [r["score"] for r in body["results"]]
    finally:
        conn.close()


@pytest.mark.slow
def test_a_job_between_two_served_parties_serves_the_trained_scores(tmp_path: Path) -> None:
    """Two `vfl serve` processes with mutual TLS: the bank submits the job, then scores the
    test rows online over gRPC and HTTPS and in batch (`vfl score`); all equal the job's."""
    job_yaml = _write_job(tmp_path, PARAMS)
    fed = kit.Federation(tmp_path / "fed", ["bank", "partner"])
    http_port = kit.free_port()
    for name in ("bank", "partner"):
        local = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
        serving: dict[str, Any] = {"models": {MODEL_ID: {"dataset": "credit"}}, "clients": ["bank"]}
        if name == "bank":
            serving.update(http_listen=f"127.0.0.1:{http_port}", http_tls=True)
        extra = {"policy": local["policy"]} if name == "partner" else {}
        fed.write_config(name, datasets=local["datasets"], preprocessing=local["preprocessing"],
                         store=local["store"], serving=serving, plugins=[], **extra)
    job = yaml.safe_load(job_yaml.read_text())
    job.pop("parties")
    job["steps"].pop("score")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    more: dict[str, Any] = {}

    def score_more(trained: pd.DataFrame) -> None:
        more["https"] = _https_score(fed, http_port, [int(i) for i in trained["id"]])
        ids = tmp_path / "ids.csv"
        trained[["id"]].to_csv(ids, index=False)
        run = subprocess.run([sys.executable, "-m", "vfl.cli", "score", "--config", str(fed.root / "bank" / "party.yaml"),
                              "--model", MODEL_ID, "--source", str(ids), "--sink", str(tmp_path / "batch.csv")],
                             capture_output=True, text=True, timeout=300, cwd=str(kit.REPO))
        assert run.returncode == 0, run.stderr[-4000:]
        more["batch"] = read_table(str(tmp_path / "batch.csv"))

    summary, trained, online = kit.submit_and_score_online(fed, tmp_path / "job.yaml", MODEL_ID,
                                                           tmp_path / "reports", score_more)
    assert summary["auc"] > 0.95, summary
    np.testing.assert_allclose(online["score"], trained["score"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(more["https"], trained["score"], rtol=0, atol=1e-6)
    batch = more["batch"].set_index("id").loc[trained["id"]]
    np.testing.assert_allclose(batch["score"], trained["score"], rtol=0, atol=1e-6)

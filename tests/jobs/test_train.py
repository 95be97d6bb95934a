"""The train step of a job for every algorithm: a whole job (PSI, split, per-party
preprocessing, training, evaluation, export, batch scoring) through `run_simulated`, then
serving from each party's model store must reproduce the trained model's scores.

Data: scikit-learn's breast cancer table split by columns (guest: label + 10 features, host:
20 features), so these tests need no shared data. HE runs use 1024-bit keys for speed. The
slow test runs the job across two `vfl serve` OS processes (mTLS) and scores online over gRPC.
"""

from __future__ import annotations

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
from vfl.errors import ConfigError, ProtocolError
from vfl.parties.config import load_party_config
from vfl.parties.runtime import PartyRuntime
from vfl.runner import run_simulated
from vfl.serving.bundle import ModelBundle
from vfl.serving.scoring import GuestScorer, HostScorer, LocalHost
from vfl.serving.sources import source_for

MODEL_ID = "breast-nn"
HOST_NN = {"bottom": {"hidden": [16], "out": 6}, "optimizer": "adam",
           "optimizer_kwargs": {"lr": 0.01}, "key_bits": 1024, "init_seed": 3}


def _write_job(tmp: Path, train_params: dict[str, Any], host_models: dict[str, Any]) -> Path:
    data = load_breast_cancer(as_frame=True)
    X = data.frame.drop(columns="target")
    X.columns = [f"x{i}" for i in range(X.shape[1])]
    ids = pd.Series(np.arange(len(X)), name="id")
    guest = pd.concat([ids, data.frame["target"].rename("y"), X.iloc[:, :10]], axis=1)
    host = pd.concat([ids, X.iloc[:, 10:]], axis=1).sample(frac=1.0, random_state=1)  # other order
    guest.to_csv(tmp / "bank.csv", index=False)
    host.to_csv(tmp / "partner.csv", index=False)
    g_cols, h_cols = list(guest.columns[2:]), list(host.columns[1:])
    bank = {
        "name": "bank",
        "datasets": {"credit": {"uri": "bank.csv", "id_columns": ["id"], "label": "y",
                                "id_types": {"id": "int"}, "features": g_cols}},
        "preprocessing": {"credit": {"numeric": {"columns": g_cols, "scale": "standard"}}},
        "store": {"path": "bank-store"},
    }
    partner = {
        "name": "partner",
        "datasets": {"credit": {"uri": "partner.csv", "id_columns": ["id"], "id_types": {"id": "int"},
                                "features": h_cols}},
        "preprocessing": {"credit": {"numeric": {"columns": h_cols, "scale": "standard"}}},
        "models": host_models,
        "store": {"path": "partner-store"},
        "policy": {"allow": [{"peers": ["bank"], "protocols": ["job"], "datasets": ["credit"]}],
                   "min_intersection": 100},
    }
    job = {
        "guest": "bank", "hosts": ["partner"],
        "datasets": {"bank": "credit", "partner": "credit"},
        "parties": {"bank": "bank.yaml", "partner": "partner.yaml"},
        "steps": {
            "psi": {}, "split": {"test_size": 0.2, "seed": 42}, "preprocess": {},
            "train": {"algorithm": "split_nn", "params": train_params},
            "evaluate": {"out_dir": "reports"},
            "export": {"model_id": MODEL_ID},
            "score": {"source": "bank.csv", "sink": "scores.csv"},
        },
    }
    for name, body in (("bank.yaml", bank), ("partner.yaml", partner), ("job.yaml", job)):
        (tmp / name).write_text(yaml.safe_dump(body, sort_keys=False))
    return tmp / "job.yaml"


def _served_scores(tmp: Path, ids: pd.Series) -> tuple[pd.DataFrame, dict[str, ModelBundle]]:
    """Load each party's part from its own store and score `ids` as the services would."""
    parties = {n: PartyRuntime(load_party_config(tmp / f"{n}.yaml")) for n in ("bank", "partner")}
    bundles = {}
    for name, party in parties.items():
        store = party.model_store()
        bundles[name] = ModelBundle.load(store.open(store.get(MODEL_ID)))
    host = HostScorer(bundles["partner"],
                      source_for(parties["partner"].config.datasets["credit"], name="credit"))
    scorer = GuestScorer(bundles["bank"], [LocalHost("partner", host)],
                         source_for(parties["bank"].config.datasets["credit"], name="credit"))
    try:
        return scorer.score(ids), bundles
    finally:
        scorer.close()


@pytest.mark.parametrize("mode", ["he", "plain"])
def test_split_nn_job_trains_exports_and_serves_the_same_scores(tmp_path: Path, mode: str) -> None:
    params = {"mode": mode, "epochs": 3, "batch_size": 64, "interactive_width": 4,
              "guest_bottom": {"hidden": [8]}, "top": {"hidden": [4]}, "optimizer": "adam",
              "optimizer_kwargs": {"lr": 0.01}, "key_bits": 1024, "random_state": 5}
    job_yaml = _write_job(tmp_path, params, {"split_nn": HOST_NN})
    if mode == "plain":  # the host's own policy must allow the less private mode
        cfg = yaml.safe_load((tmp_path / "partner.yaml").read_text())
        cfg["policy"]["allow_insecure"] = True
        (tmp_path / "partner.yaml").write_text(yaml.safe_dump(cfg))

    outcome = run_simulated(load_job_config(job_yaml))
    assert outcome.metrics["auc"] > 0.95, outcome.metrics

    # the trained model's joint scores of the test rows, as the evaluate step wrote them
    trained = read_table(str(tmp_path / "reports" / outcome.job_id / "test_scores.csv"))
    served, bundles = _served_scores(tmp_path, trained["id"])
    assert served["missing"].eq("").all()
    np.testing.assert_allclose(served["score"], trained["score"], rtol=0, atol=1e-6)

    # each party's part is its own: the host's W is (its bottom width) x (interactive width)
    assert bundles["partner"].algorithm == bundles["bank"].algorithm == "split_nn"
    assert bundles["partner"].part.W.shape == (6, 4)
    assert bundles["partner"].part.bottom[0].in_features == 20

    # the job's batch scoring went through the same parts
    batch = read_table(str(tmp_path / "scores.csv")).set_index("id")
    np.testing.assert_allclose(batch.loc[trained["id"], "score"], trained["score"], rtol=0, atol=1e-6)


def test_split_nn_job_needs_the_hosts_own_bottom_model(tmp_path: Path) -> None:
    """The guest cannot supply the host's model: without `models.split_nn.bottom` in the
    host's config the host refuses at once (the guest does not wait for a timeout)."""
    job_yaml = _write_job(tmp_path, {"epochs": 1, "key_bits": 1024}, {})
    with pytest.raises((ConfigError, ProtocolError),
                       match=r"models\.split_nn\.bottom|split NN settings are invalid"):
        run_simulated(load_job_config(job_yaml))


def test_split_nn_job_params_errors_name_the_field(tmp_path: Path) -> None:
    job_yaml = _write_job(tmp_path, {"epochs": 1, "optimizer": "adamm", "key_bits": 1024},
                          {"split_nn": HOST_NN})
    with pytest.raises(ConfigError, match=r"steps\.train\.params\.optimizer: optimizer must be"):
        run_simulated(load_job_config(job_yaml))


@pytest.mark.slow
def test_split_nn_job_between_two_served_parties(tmp_path: Path) -> None:
    """The same job across two `vfl serve` OS processes (mTLS, the party's own process pool):
    the bank submits with `vfl run`, then scores online through its service over gRPC (the
    partner's service computes A W per id); the online scores equal the trained model's."""
    job_yaml = _write_job(tmp_path, {"epochs": 2, "batch_size": 128, "interactive_width": 4,
                                     "optimizer_kwargs": {"lr": 0.01}, "key_bits": 1024},
                          {"split_nn": HOST_NN})
    fed = kit.Federation(tmp_path / "fed", ["bank", "partner"])
    for name in ("bank", "partner"):
        local = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
        for spec in local["datasets"].values():
            spec["uri"] = str(tmp_path / spec["uri"])
        local["store"]["path"] = str(tmp_path / local["store"]["path"])
        extra = {}
        if name == "partner":  # the partner's own policy: this job, then serving the model
            local["policy"]["allow"][0]["protocols"] = ["job", "inference"]
            extra = {"policy": local["policy"]}
        fed.write_config(name, datasets=local["datasets"], preprocessing=local["preprocessing"],
                         models=local.get("models", {}), store=local["store"],
                         serving={"models": {MODEL_ID: {"dataset": "credit"}}, "clients": ["bank"]}, plugins=[],
                         **extra)
    job = yaml.safe_load(job_yaml.read_text())
    job.pop("parties")
    job["steps"]["evaluate"]["out_dir"] = str(tmp_path / "reports")
    job["steps"].pop("score")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))

    summary, trained, online = kit.submit_and_score_online(fed, tmp_path / "job.yaml", MODEL_ID,
                                                           tmp_path / "reports")
    assert summary["auc"] > 0.9, summary
    np.testing.assert_allclose(online["score"], trained["score"], rtol=0, atol=1e-6)

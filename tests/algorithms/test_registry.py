"""The algorithm registry: a third algorithm registered from `tests/` (no edit in `vfl/`)
trains, exports and serves through a job, and nothing in `vfl/` dispatches on algorithm names.

Data: scikit-learn's breast cancer table split by columns (guest: label + 10 features, host:
20 features, in another row order).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from tests.algorithms import fed_linear
from tests.parties import service_kit as kit
from vfl.algorithms import registry
from vfl.config import load_job_config
from vfl.connectors import read_table
from vfl.errors import ConfigError, PolicyError
from vfl.parties.config import load_party_config
from vfl.parties.runtime import PartyRuntime
from vfl.runner import run_simulated
from vfl.serving.bundle import ModelBundle
from vfl.serving.scoring import GuestScorer, HostScorer, LocalHost
from vfl.serving.sources import source_for

MODEL_ID = "breast-linear"
VFL = Path(__file__).resolve().parents[2] / "vfl"


def _write_job(tmp: Path, allow_insecure: bool = True) -> Path:
    data = load_breast_cancer(as_frame=True)
    X = data.frame.drop(columns="target")
    X.columns = [f"x{i}" for i in range(X.shape[1])]
    ids = pd.Series(np.arange(len(X)), name="id")
    guest = pd.concat([ids, data.frame["target"].rename("y"), X.iloc[:, :10]], axis=1)
    host = pd.concat([ids, X.iloc[:, 10:]], axis=1).sample(frac=1.0, random_state=1)
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
        "store": {"path": "partner-store"},
        "policy": {"allow": [{"peers": ["bank"], "protocols": ["job"], "datasets": ["credit"]}],
                   "min_intersection": 100, "allow_insecure": allow_insecure},
    }
    job = {
        "guest": "bank", "hosts": ["partner"],
        "datasets": {"bank": "credit", "partner": "credit"},
        "parties": {"bank": "bank.yaml", "partner": "partner.yaml"},
        "steps": {
            "psi": {}, "split": {"test_size": 0.2, "seed": 42}, "preprocess": {},
            "train": {"algorithm": fed_linear.NAME, "params": {"epochs": 60}},
            "evaluate": {"out_dir": "reports", "bootstrap": 0},
            "export": {"model_id": MODEL_ID},
            "score": {"source": "bank.csv", "sink": "scores.csv"},
        },
    }
    for name, body in (("bank.yaml", bank), ("partner.yaml", partner), ("job.yaml", job)):
        (tmp / name).write_text(yaml.safe_dump(body, sort_keys=False))
    return tmp / "job.yaml"


def test_a_registered_third_algorithm_trains_exports_and_serves_through_a_job(tmp_path: Path) -> None:
    outcome = run_simulated(load_job_config(_write_job(tmp_path)))
    assert outcome.metrics["auc"] > 0.95, outcome.metrics

    # each party's store holds its own part of the new algorithm; served, they give the same scores
    parties = {n: PartyRuntime(load_party_config(tmp_path / f"{n}.yaml")) for n in ("bank", "partner")}
    bundles = {}
    for name, party in parties.items():
        store = party.model_store()
        bundles[name] = ModelBundle.load(store.open(store.get(MODEL_ID)))
    assert isinstance(bundles["bank"].part, fed_linear.GuestPart)
    assert isinstance(bundles["partner"].part, fed_linear.HostPart)
    assert bundles["partner"].part.coef.shape == (20,)
    assert bundles["bank"].algorithm == bundles["partner"].algorithm == fed_linear.NAME

    trained = read_table(str(tmp_path / "reports" / outcome.job_id / "test_scores.csv"))
    host = HostScorer(bundles["partner"], source_for(parties["partner"].config.datasets["credit"], name="credit"))
    scorer = GuestScorer(bundles["bank"], [LocalHost("partner", host)],
                         source_for(parties["bank"].config.datasets["credit"], name="credit"))
    try:
        served = scorer.score(trained["id"])
    finally:
        scorer.close()
    assert served["missing"].eq("").all()
    np.testing.assert_allclose(served["score"], trained["score"], rtol=0, atol=1e-9)

    # the job's batch scoring went through the same parts
    batch = read_table(str(tmp_path / "scores.csv")).set_index("id")
    np.testing.assert_allclose(batch.loc[trained["id"], "score"], trained["score"], rtol=0, atol=1e-9)


def test_the_hosts_policy_still_decides_for_a_registered_algorithm(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="residuals in the clear"):
        run_simulated(load_job_config(_write_job(tmp_path, allow_insecure=False)))


def test_the_job_config_learns_algorithms_and_their_params_from_the_registry(tmp_path: Path) -> None:
    job_yaml = _write_job(tmp_path)
    text = job_yaml.read_text()
    job_yaml.write_text(text.replace("epochs: 60", "epoch: 60"))
    with pytest.raises(ConfigError, match=r"steps\.train\.params: unknown parameter 'epoch'; did you mean 'epochs'"):
        load_job_config(job_yaml)
    job_yaml.write_text(text.replace(f"algorithm: {fed_linear.NAME}", "algorithm: fed_linaer"))
    with pytest.raises(ConfigError, match=r"steps\.train\.algorithm.*'fed_linaer' is not available.*fed_linear"):
        load_job_config(job_yaml)
    assert {"hetero_lr", "split_nn", fed_linear.NAME} <= set(registry.names())


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register_algorithm("hetero_lr")(fed_linear.FedLinear)


def test_nothing_in_vfl_dispatches_on_algorithm_names() -> None:
    dispatch = re.compile(r"if .*algorithm (==|!=)|PART_TYPES")
    found = [f"{path.relative_to(VFL)}:{i}" for path in VFL.rglob("*.py")
             for i, line in enumerate(path.read_text().splitlines(), 1) if dispatch.search(line)]
    assert found == []


@pytest.mark.slow
def test_a_registered_third_algorithm_runs_between_two_served_parties(tmp_path: Path) -> None:
    """Two `vfl serve` OS processes (mutual TLS) that list the algorithm's module in their
    `plugins`: the bank submits the job with `vfl run`, then scores online over gRPC; the
    online scores equal the trained model's."""
    job_yaml = _write_job(tmp_path)
    fed = kit.Federation(tmp_path / "fed", ["bank", "partner"])
    for name in ("bank", "partner"):
        local = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
        for spec in local["datasets"].values():
            spec["uri"] = str(tmp_path / spec["uri"])
        local["store"]["path"] = str(tmp_path / local["store"]["path"])
        extra = {}
        if name == "partner":  # its own policy: this job (plaintext allowed), then serving the model
            local["policy"]["allow"][0]["protocols"] = ["job", "inference"]
            extra = {"policy": local["policy"]}
        fed.write_config(name, datasets=local["datasets"], preprocessing=local["preprocessing"],
                         store=local["store"], plugins=["tests.algorithms.fed_linear"],
                         serving={"models": {MODEL_ID: {"dataset": "credit"}}, "clients": ["bank"]},
                         **extra)
    job = yaml.safe_load(job_yaml.read_text())
    job.pop("parties")
    job["steps"]["evaluate"]["out_dir"] = str(tmp_path / "reports")
    job["steps"].pop("score")
    job["steps"]["evaluate"]["iv"] = False
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))

    summary, trained, online = kit.submit_and_score_online(fed, tmp_path / "job.yaml", MODEL_ID,
                                                           tmp_path / "reports")
    assert summary["auc"] > 0.95, summary
    np.testing.assert_allclose(online["score"], trained["score"], rtol=0, atol=1e-9)

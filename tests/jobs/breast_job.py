"""A whole job (PSI, split, per-party preprocessing, training, evaluation, export, batch
scoring) on scikit-learn's breast cancer table split by columns: the bank holds the label and
10 features, the partner 20 features in another row order. Written as the two party YAMLs and
the job YAML a user would write, then scored as the services would, in one process or across
two `vfl serve` processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.datasets import load_breast_cancer

from tests.parties import service_kit as kit
from vfl.parties.config import load_party_config
from vfl.parties.runtime import PartyRuntime
from vfl.serving.bundle import ModelBundle
from vfl.serving.scoring import GuestScorer, HostScorer, LocalHost
from vfl.serving.sources import source_for

PARTIES = ("bank", "partner")


def write_job(tmp: Path, algorithm: str, params: dict[str, Any], model_id: str, *,
              host_models: dict[str, Any] | None = None, allow_insecure: bool = False,
              evaluate: dict[str, Any] | None = None) -> Path:
    """bank.yaml, partner.yaml (its own `models` and policy) and job.yaml in `tmp`; the job's
    path. The job trains `algorithm` with `params` and exports it as `model_id`."""
    data = load_breast_cancer(as_frame=True)
    X = data.frame.drop(columns="target")
    X.columns = [f"x{i}" for i in range(X.shape[1])]
    ids = pd.Series(range(len(X)), name="id")
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
        "models": host_models or {},
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
            "train": {"algorithm": algorithm, "params": params},
            "evaluate": {"out_dir": "reports", **(evaluate or {})},
            "export": {"model_id": model_id},
            "score": {"source": "bank.csv", "sink": "scores.csv"},
        },
    }
    for name, body in (("bank.yaml", bank), ("partner.yaml", partner), ("job.yaml", job)):
        (tmp / name).write_text(yaml.safe_dump(body, sort_keys=False))
    return tmp / "job.yaml"


def served_scores(tmp: Path, ids: pd.Series, model_id: str) -> tuple[pd.DataFrame, dict[str, ModelBundle]]:
    """Load each party's part of `model_id` from its own store and score `ids` as the services
    would; the scores and each party's bundle."""
    parties = {n: PartyRuntime(load_party_config(tmp / f"{n}.yaml")) for n in PARTIES}
    bundles = {}
    for name, party in parties.items():
        store = party.model_store()
        bundles[name] = ModelBundle.load(store.open(store.get(model_id)))
    host = HostScorer(bundles["partner"],
                      source_for(parties["partner"].config.datasets["credit"], name="credit"))
    scorer = GuestScorer(bundles["bank"], [LocalHost("partner", host)],
                         source_for(parties["bank"].config.datasets["credit"], name="credit"))
    try:
        return scorer.score(ids), bundles
    finally:
        scorer.close()


def run_served(tmp: Path, job_yaml: Path, model_id: str, plugins: list[str]) -> tuple[dict[str, Any], Any, Any]:
    """The job of `job_yaml` across two `vfl serve` processes (mutual TLS) with the parties'
    YAMLs of `tmp` (and `plugins` loaded), submitted by the bank, without its batch scoring;
    then the test rows scored online (`kit.submit_and_score_online`)."""
    fed = kit.Federation(tmp / "fed", list(PARTIES))
    for name in PARTIES:
        local = yaml.safe_load((tmp / f"{name}.yaml").read_text())
        for spec in local["datasets"].values():
            spec["uri"] = str(tmp / spec["uri"])
        local["store"]["path"] = str(tmp / local["store"]["path"])
        extra = {}
        if name == "partner":  # the partner's own policy: this job, then serving the model
            local["policy"]["allow"][0]["protocols"] = ["job", "inference"]
            extra = {"policy": local["policy"]}
        fed.write_config(name, datasets=local["datasets"], preprocessing=local["preprocessing"],
                         models=local.get("models", {}), store=local["store"], plugins=plugins,
                         serving={"models": {model_id: {"dataset": "credit"}}, "clients": ["bank"]},
                         **extra)
    job = yaml.safe_load(job_yaml.read_text())
    job.pop("parties")
    job["steps"]["evaluate"]["out_dir"] = str(tmp / "reports")
    job["steps"].pop("score")
    (tmp / "job.yaml").write_text(yaml.safe_dump(job))
    return kit.submit_and_score_online(fed, tmp / "job.yaml", model_id, tmp / "reports")

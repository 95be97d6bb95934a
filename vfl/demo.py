"""`vfl demo`: a bank and its partner, end to end, every party simulated in this process.

On the shared UCI credit card data (raw columns, 5% missing values, 20% of each side's
customers unknown to the other): the bank's table is a Parquet file, the partner's a SQL
table (SQLite, no server needed); ECDH-PSI aligns them; each party fits its own preprocessing;
Paillier HE logistic regression trains across them; the bank evaluates (metrics + HTML
report); both export their parts to their model stores; the bank batch-scores its customers
and scores a few online. Without the shared data, scikit-learn's breast cancer data split by
columns plays the two parties.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from vfl import demo_data
from vfl.config import load_job_config
from vfl.connectors import write_table
from vfl.parties.config import load_party_config
from vfl.parties.context import ProgressEvent
from vfl.runner import run_simulated
from vfl.serving.bundle import ModelBundle
from vfl.serving.scoring import GuestScorer, HostScorer, LocalHost
from vfl.serving.sources import source_for

SHARED_CANDIDATES = (
    Path.cwd().parent / "shared" / "data",
    Path(__file__).resolve().parents[2] / "shared" / "data",
)
MODEL_ID = "credit-risk"
ABSENT_SHARE = 0.2
NUMERIC_DEFAULTS: dict[str, Any] = {"clip": [0.01, 0.99], "scale": "standard"}
"""Numeric columns are clipped at their 1%/99% quantiles and standardised: heavy tails would
otherwise push scores out of the range where HE-LR's Taylor approximation holds."""


def find_shared_data() -> Path | None:
    for candidate in SHARED_CANDIDATES:
        if (candidate / "UCI_Credit_Card.csv").exists():
            return candidate
    return None


def run_demo(data_dir: Path | None = None, out_dir: Path = Path("runs/demo"), key_bits: int = 2048,
             on_progress: Callable[[ProgressEvent], None] | None = None) -> dict[str, Any]:
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir or find_shared_data()
    if data_dir is not None:
        guest, host, guest_pre, host_pre, train = _uci(Path(data_dir))
        source = f"UCI credit card data from {data_dir}"
    else:
        guest, host, guest_pre, host_pre, train = breast_cancer_parties()
        source = "scikit-learn's breast cancer data (no ../shared/data found)"
    guest, host = partial_overlap(guest, host, seed=7)

    write_table(guest, str(out_dir / "bank.parquet"))
    write_table(host, f"sqlite:///{out_dir / 'partner.db'}?table=customers")
    job_yaml = _write_configs(out_dir, guest, host, guest_pre, host_pre, {**train, "key_bits": key_bits})

    outcome = run_simulated(load_job_config(job_yaml), on_progress=on_progress)
    online = _score_online(out_dir, guest.head(5))
    return {
        "data": source,
        "bank_customers": len(guest), "partner_customers": len(host),
        "intersection_size": outcome.intersection_size,
        "auc": outcome.metrics.get("auc"), "ks": outcome.metrics.get("ks"),
        "report": outcome.report,
        "model": {"id": outcome.model_id, "version": outcome.job_id},
        "batch_scoring": outcome.scored,
        "online_scores": online,
        "seconds": outcome.seconds,
        "configs": str(out_dir),
    }


def _uci(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, Any], dict[str, Any]]:
    guest, host = demo_data.split_uci(data_dir / "UCI_Credit_Card.csv", missing_rate=0.05, seed=0)
    train = {"epochs": 5, "batch_size": 1024, "learning_rate": 0.15, "lr_schedule": "inverse_sqrt",
             "optimizer": "adam"}
    return guest, host, demo_data.UCI_GUEST_PREPROCESSING, demo_data.UCI_HOST_PREPROCESSING, train


def breast_cancer_parties() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, Any], dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    X = data.frame.drop(columns="target")
    X.columns = [f"x{i}" for i in range(X.shape[1])]
    ids = pd.Series(np.arange(len(X)), name="id")
    guest = pd.concat([ids, data.frame["target"].rename("y"), X.iloc[:, :10]], axis=1)
    host = pd.concat([ids, X.iloc[:, 10:]], axis=1)
    pre_g = {"numeric": {"columns": list(guest.columns[2:]), **NUMERIC_DEFAULTS}}
    pre_h = {"numeric": {"columns": list(host.columns[1:]), **NUMERIC_DEFAULTS}}
    return guest, host, pre_g, pre_h, {"epochs": 5, "batch_size": 128, "learning_rate": 0.1, "optimizer": "adam"}


def partial_overlap(guest: pd.DataFrame, host: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each side lacks a different 20% of the other's customers, so PSI has work to do."""
    rng = np.random.default_rng(seed)
    ids = guest["id"].to_numpy()
    shuffled = rng.permutation(ids)
    k = int(len(ids) * ABSENT_SHARE)
    only_guest, only_host = set(shuffled[:k]), set(shuffled[k: 2 * k])
    return (guest[~guest["id"].isin(only_host)].reset_index(drop=True),
            host[~host["id"].isin(only_guest)].sample(frac=1.0, random_state=seed).reset_index(drop=True))


def _write_configs(out: Path, guest: pd.DataFrame, host: pd.DataFrame, guest_pre: dict[str, Any],
                   host_pre: dict[str, Any], train: dict[str, Any]) -> Path:
    guest_features = [c for c in guest.columns if c not in ("id", "y")]
    host_features = [c for c in host.columns if c != "id"]
    categorical = list(host_pre.get("categorical", {}).get("columns", []))
    bank = {
        "name": "bank",
        "datasets": {"credit": {"uri": "bank.parquet", "id_columns": ["id"], "label": "y",
                                "features": guest_features}},
        "preprocessing": {"credit": guest_pre},
        "store": {"path": "bank-store"},
    }
    partner = {
        "name": "partner",
        "datasets": {"credit": {"uri": f"sqlite:///{out / 'partner.db'}?table=customers",
                                "id_columns": ["id"], "features": host_features,
                                "categorical": categorical}},
        "preprocessing": {"credit": host_pre},
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
            "train": {"algorithm": "hetero_lr", "params": train},
            "evaluate": {"out_dir": "reports"},
            "export": {"model_id": MODEL_ID},
            "score": {"source": "bank.parquet", "sink": "scores.parquet"},
        },
    }
    for name, body in (("bank.yaml", bank), ("partner.yaml", partner), ("job.yaml", job)):
        (out / name).write_text(yaml.safe_dump(body, sort_keys=False))
    return out / "job.yaml"


def _score_online(out: Path, requests: pd.DataFrame) -> list[dict[str, Any]]:
    """Load each party's exported part from its own store and score a few ids, as a service would."""
    from vfl.parties.runtime import PartyRuntime

    bank = PartyRuntime(load_party_config(out / "bank.yaml"))
    partner = PartyRuntime(load_party_config(out / "partner.yaml"))
    bundles = {}
    for party in (bank, partner):
        store = party.model_store()
        bundles[party.name] = ModelBundle.load(store.open(store.get(MODEL_ID)))
    host = HostScorer(bundles["partner"], source_for(partner.config.datasets["credit"]))
    scorer = GuestScorer(bundles["bank"], [LocalHost("partner", host)])
    try:
        result = scorer.score(requests["id"], requests[bundles["bank"].columns])
    finally:
        scorer.close()
    return [{"id": int(r.id), "score": None if np.isnan(r.score) else round(float(r.score), 6),
             "missing": r.missing} for r in result.itertuples()]

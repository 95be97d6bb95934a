"""The mission's acceptance, as examples/README.md has a bank and its partner live it.

The example's own YAML files, the CLI in separate OS processes: `vfl certs`, two `vfl serve`
(mutual TLS), `vfl run` (the bank submits to its running service), `vfl score`, `vfl models`,
and online scores over gRPC and HTTP. The partner's raw UCI columns sit in a real MariaDB
table, the bank's in Parquet; 20% of each side's customers are unknown to the other; each
party preprocesses its own columns; HE-LR with 2048-bit keys. Checked: the intersection, AUC
within 0.01 of the same preprocessing + scikit-learn LR trained centrally on the joined rows,
the report, and online and batch scores equal to the trained model's scores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from tests.parties import service_kit as kit
from vfl.connectors import read_table
from vfl.crypto.tls import TlsFiles
from vfl.jobs import TEST_SCORES
from vfl.preprocessing.preprocessor import PartyPreprocessor
from vfl.serving.client import ScoringClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MODEL = "credit-risk"


def vfl(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "vfl.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=1500, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, f"vfl {' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def mission(tmp_path_factory, mariadb_url, shared_data):
    root = tmp_path_factory.mktemp("mission")
    for name in ("bank.yaml", "partner.yaml", "job.yaml", "prepare_data.py"):
        shutil.copy(EXAMPLES / name, root / name)
    env = {"PARTNER_DB_URL": mariadb_url, "BANK_PORT": str(kit.free_port()),
           "PARTNER_PORT": str(kit.free_port()), "BANK_HTTP_PORT": str(kit.free_port())}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    served: list[kit.Served] = []
    try:
        subprocess.run([sys.executable, "prepare_data.py", "--data-dir", str(shared_data)], cwd=root,
                       check=True, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True)
        vfl("certs", "ca", "--dir", "work/certs", cwd=root)
        vfl("certs", "issue", "bank", "--host", "127.0.0.1", "--dir", "work/certs", cwd=root)
        vfl("certs", "issue", "partner", "--dir", "work/certs", cwd=root)
        for party in ("partner", "bank"):
            served.append(kit.Served(root / f"{party}.yaml", int(env[f"{party.upper()}_PORT"]),
                                     root / f"{party}-serve.log"))
        summary = json.loads(vfl("run", "job.yaml", "--party", "bank.yaml", "--mode", "submit", cwd=root))
        yield root, summary, env
    finally:
        for proc in served:
            proc.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def data(mission, mariadb_url):
    root, summary, _ = mission
    bank = read_table(str(root / "work" / "bank.parquet"))
    partner = read_table(f"{mariadb_url}?table=customers")
    tested = read_table(str(root / "work" / "reports" / summary["job_id"] / TEST_SCORES))
    return bank, partner, tested


def test_the_job_aligns_the_common_customers_and_matches_the_centralized_pipeline(mission, data):
    root, summary, _ = mission
    bank, partner, tested = data
    common = set(bank["id"]) & set(partner["id"])
    assert len(common) < len(bank) and len(common) < len(partner)  # each side has its own customers
    assert summary["intersection_size"] == len(common)
    assert len(tested) == round(0.2 * len(common)) and set(tested["id"]) <= common
    assert summary["auc"] == pytest.approx(roc_auc_score(tested["y"], tested["score"]), abs=1e-12)

    # centrally: the same per-party preprocessing, fitted on the same training rows, then sklearn
    joined = bank.merge(partner, on="id")
    train, test = joined[~joined["id"].isin(tested["id"])], joined.set_index("id").loc[tested["id"]]
    features = []
    for party in ("bank", "partner"):
        spec = yaml.safe_load((root / f"{party}.yaml").read_text())["preprocessing"]["credit"]
        pre = PartyPreprocessor(config=spec).fit(train)
        features.append((pre.transform(train).to_numpy(), pre.transform(test).to_numpy()))
    X_train = np.hstack([f[0] for f in features])
    X_test = np.hstack([f[1] for f in features])
    central = LogisticRegression(max_iter=2000).fit(X_train, train["y"])
    central_auc = roc_auc_score(test["y"], central.predict_proba(X_test)[:, 1])
    assert abs(summary["auc"] - central_auc) <= 0.01, (summary["auc"], central_auc)
    assert summary["auc"] > 0.7

    report = root / "work" / "reports" / summary["job_id"] / "report.html"
    assert report.stat().st_size > 50_000 and b"data:image/png;base64" in report.read_bytes()


def test_batch_scores_equal_the_trained_models_scores(mission, data):
    root, summary, _ = mission
    bank, partner, tested = data
    out = json.loads(vfl("score", "--config", "bank.yaml", "--model", MODEL, "--source",
                         "work/bank.parquet", "--sink", "work/batch.parquet", cwd=root))
    assert out["rows"] == len(bank) and out["scored"] == summary["intersection_size"]
    for sink in ("batch.parquet", "scores.parquet"):  # `vfl score`, and the job's own score step
        scores = read_table(str(root / "work" / sink))
        both = tested.merge(scores, on="id", suffixes=("_trained", "_served"))
        assert len(both) == len(tested)
        np.testing.assert_allclose(both["score_served"], both["score_trained"], rtol=0, atol=1e-9)
        unknown = scores[~scores["id"].isin(partner["id"])]
        assert len(unknown) and unknown["score"].isna().all()


def test_online_scores_equal_the_trained_models_scores(mission, data):
    root, summary, env = mission
    bank, partner, tested = data
    certs = root / "work" / "certs"
    sample = tested.sample(20, random_state=0)
    stranger = int(bank.loc[~bank["id"].isin(partner["id"]), "id"].iloc[0])
    ids = [*sample["id"].tolist(), stranger]
    tls = TlsFiles(certs / "ca.pem", certs / "bank.pem", certs / "bank.key")
    with ScoringClient(f"127.0.0.1:{env['BANK_PORT']}", "bank", tls) as client:
        online = client.score(MODEL, ids)
    np.testing.assert_allclose(online["score"][:-1], sample["score"], rtol=0, atol=1e-9)
    assert np.isnan(online["score"].iloc[-1]) and online["missing"].iloc[-1] == "partner"
    assert online.attrs["version"] == summary["job_id"]

    http = requests.post(f"https://127.0.0.1:{env['BANK_HTTP_PORT']}/v1/models/{MODEL}/score",
                         json={"ids": ids[:3]}, cert=(str(tls.cert), str(tls.key)),
                         verify=str(tls.ca), timeout=30)
    assert http.status_code == 200, http.text
    got = pd.DataFrame(http.json()["results"])
    np.testing.assert_allclose(got["score"], sample["score"][:3], rtol=0, atol=1e-9)


def test_both_parties_hold_the_same_production_version(mission):
    root, summary, _ = mission
    for party in ("bank", "partner"):
        listing = vfl("models", "--config", f"{party}.yaml", "list", MODEL, "--json", cwd=root)
        records = [json.loads(line) for line in listing.splitlines()]
        assert [(r["version"], r["stage"]) for r in records if r["version"] == summary["job_id"]] \
            == [(summary["job_id"], "production")], listing

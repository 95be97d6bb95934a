"""One trained federation for every serving test: a bank (guest) and a partner (host) train HE
logistic regression in this process (1024-bit keys, a few hundred synthetic rows, PSI, each
party's own preprocessing), export their parts to their own model stores, and then run as two
`vfl serve` OS processes with mutual TLS. The parts served are the ones training produced;
the reference scores are the trained estimator's `predict_proba` on the test rows (the job's
evaluate step writes them to test_scores.csv).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.parties import service_kit as kit
from tests.serving.credit import GUEST_FEATURES, HOST_FEATURES, MODEL, credit_tables, preprocessing
from vfl.config import JobConfig
from vfl.connectors import write_table
from vfl.crypto.tls import TlsFiles, issue_party_cert
from vfl.jobs import TEST_SCORES
from vfl.runner import run_simulated
from vfl.serving.client import ScoringClient

N_ROWS = 400
HOST_TIMEOUT = 1.5  # seconds the guest waits for the partner's partial results


@dataclass
class Trained:
    """The federation on disk, the two running services and the reference scores."""

    fed: kit.Federation
    root: Path
    job_id: str
    guest: pd.DataFrame  # the bank's table (id, y, features)
    host_absent: np.ndarray  # bank ids the partner does not have
    expected: pd.DataFrame  # id, score: the trained estimator's predict_proba on the test rows
    bank: kit.Served
    partner: kit.Served
    http_port: int
    app_tls: TlsFiles  # a bank application's certificate (issued by the federation's CA)
    metrics_ports: dict[str, int]  # each party's metrics port (scraped by the certificate "prometheus")

    def config_path(self, name: str) -> Path:
        return self.root / name / "party.yaml"

    def scoring_client(self, timeout: float = 30.0) -> ScoringClient:
        return ScoringClient(f"127.0.0.1:{self.fed.ports['bank']}", "bank", self.app_tls, timeout)

    def restart_partner(self) -> None:
        self.partner.stop()
        self.partner = kit.Served(self.config_path("partner"), self.fed.ports["partner"],
                                  self.root / "partner" / "serve.log")


def check_batch_scores(trained: Trained, table: pd.DataFrame) -> None:
    """Every bank id once; test rows == the trained estimator; the partner's gaps flagged."""
    assert len(table) == N_ROWS and table["id"].is_unique
    assert set(table["id"]) == set(trained.guest["id"])
    merged = trained.expected.merge(table, on="id", suffixes=("_trained", "_batch"))
    assert len(merged) == len(trained.expected)
    np.testing.assert_allclose(merged["score_batch"], merged["score_trained"], rtol=0, atol=1e-9)
    absent = table["id"].isin(trained.host_absent)
    assert table.loc[absent, "score"].isna().all()
    assert (table.loc[absent, "missing"] == "partner").all()
    assert table.loc[~absent, "score"].notna().all()
    assert table.loc[~absent, "missing"].fillna("").eq("").all()


@pytest.fixture(scope="package")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("serving")
    fed = kit.Federation(root, ["bank", "partner"])
    guest, host = credit_tables(N_ROWS)
    write_table(guest, str(root / "bank.csv"))
    write_table(host, f"sqlite:///{root / 'partner.db'}?table=features")
    http_port = kit.free_port()
    metrics_ports = {name: kit.free_port() for name in ("bank", "partner")}
    fed.write_config(
        "bank",
        datasets={"credit": {"uri": str(root / "bank.csv"), "id_column": "id", "label": "y",
                             "id_types": {"id": "int"}, "features": GUEST_FEATURES, "categorical": ["segment"]}},
        preprocessing={"credit": preprocessing("bank")},
        serving={"models": {MODEL: {"dataset": "credit"}}, "http_listen": f"127.0.0.1:{http_port}",
                 "timeout": HOST_TIMEOUT, "clients": ["*"]},  # plain HTTP has no identity: explicitly open
        metrics={"listen": f"127.0.0.1:{metrics_ports['bank']}", "clients": ["prometheus"]},
    )
    fed.write_config(
        "partner",
        datasets={"credit": {"uri": f"sqlite:///{root / 'partner.db'}?table=features",
                             "id_column": "id", "features": HOST_FEATURES,
                             "categorical": ["region"]}},
        preprocessing={"credit": preprocessing("partner")},
        serving={"models": {MODEL: {"dataset": "credit"}}},
        policy={"allow": [{"peers": ["bank"], "protocols": ["job", "inference", "promote"],
                           "datasets": ["credit"]}]},
        metrics={"listen": f"127.0.0.1:{metrics_ports['partner']}", "clients": ["prometheus"]},
    )
    job = JobConfig.model_validate({
        "guest": "bank", "hosts": ["partner"], "datasets": {"bank": "credit", "partner": "credit"},
        "parties": {"bank": str(root / "bank" / "party.yaml"), "partner": str(root / "partner" / "party.yaml")},
        "steps": {
            "psi": {}, "split": {"test_size": 0.25, "seed": 3}, "preprocess": {},
            "train": {"algorithm": "hetero_lr",
                      "params": {"epochs": 3, "batch_size": 128, "learning_rate": 0.1,
                                 "optimizer": "adam", "key_bits": 1024}},
            "evaluate": {"out_dir": str(root / "reports")},
            "export": {"model_id": MODEL},
        },
    })
    outcome = run_simulated(job)
    assert outcome.metrics["auc"] > 0.7, outcome.metrics  # a real model, not noise
    expected = pd.read_csv(root / "reports" / outcome.job_id / TEST_SCORES)[["id", "score"]]
    host_absent = np.setdiff1d(guest["id"], host["id"])

    app_tls = issue_party_cert(fed.certs, "app")
    issue_party_cert(fed.certs, "prometheus")
    partner = kit.Served(root / "partner" / "party.yaml", fed.ports["partner"], root / "partner" / "serve.log")
    try:
        bank = kit.Served(root / "bank" / "party.yaml", fed.ports["bank"], root / "bank" / "serve.log")
    except BaseException:
        partner.stop()
        raise
    state = Trained(fed, root, outcome.job_id, guest, host_absent, expected, bank, partner, http_port, app_tls,
                    metrics_ports)
    yield state
    state.bank.stop()
    state.partner.stop()

"""The pipeline job across two `vfl serve` processes (real mTLS) gives what the simulation gives;
the host's policy, a wrong driver and the guest's private settings are handled.

Breast cancer data (bundled with scikit-learn) split by columns, 20% of each side's customers
unknown to the other, 1024-bit keys: small and quick; the full-size run is test_end_to_end.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.parties import service_kit as kit
from vfl import demo
from vfl.config import load_job_config
from vfl.connectors import read_table, write_table
from vfl.errors import ConfigError, PolicyError, VflError
from vfl.jobs import REDACTED, TEST_SCORES, job_params
from vfl.parties import registry
from vfl.runner import run_federated, run_simulated
from vfl.store.jobs import JobStore
from vfl.store.models import ModelStore

MODEL = "breast"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    guest, host, guest_pre, host_pre, train = demo.breast_cancer_parties()
    guest, host = demo.partial_overlap(guest, host, seed=3)
    write_table(guest, str(root / "bank.csv"))
    write_table(host, str(root / "partner.parquet"))
    f = kit.Federation(root, ["bank", "partner"])
    f.write_config(
        "bank", plugins=[],
        datasets={"cancer": {"uri": str(root / "bank.csv"), "id_column": "id", "label": "y",
                             "id_types": {"id": "int"}}},
        preprocessing={"cancer": guest_pre},
    )
    f.write_config(
        "partner", plugins=[],
        datasets={"cancer": {"uri": str(root / "partner.parquet"), "id_column": "id"},
                  "secret": {"uri": str(root / "partner.parquet"), "id_column": "id"}},
        preprocessing={"cancer": host_pre},
        policy={"allow": [{"peers": ["bank"], "protocols": ["job", "inference"],
                           "datasets": ["cancer"]}], "min_intersection": 50},
    )
    f.guest, f.host = guest, host
    f.job_body = {
        "guest": "bank", "hosts": ["partner"],
        "datasets": {"bank": "cancer", "partner": "cancer"},
        "parties": {"bank": "bank/party.yaml", "partner": "partner/party.yaml"},
        "steps": {
            "psi": {}, "split": {"test_size": 0.25, "seed": 1}, "preprocess": {},
            "train": {"algorithm": "hetero_lr", "params": {**train, "key_bits": 1024, "random_state": 5}},
            "evaluate": {"out_dir": "reports"},
            "export": {"model_id": MODEL},
            "score": {"source": "bank.csv", "sink": "scores.parquet"},
        },
    }
    return f


def write_job(fed, name: str, **steps) -> object:
    body = {**fed.job_body, "steps": {**fed.job_body["steps"], **steps}}
    path = fed.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return load_job_config(path)


@pytest.fixture(scope="module")
def served(fed):
    procs = [kit.Served(fed.root / p / "party.yaml", fed.ports[p], fed.root / p / "serve.log")
             for p in ("partner", "bank")]
    yield procs
    for proc in procs:
        proc.stop()


@pytest.fixture(scope="module")
def simulated(fed):
    job = write_job(fed, "simulated", score={"source": "bank.csv", "sink": "sim_scores.parquet"})
    return run_simulated(job.model_copy(update={"job_id": "sim-1"}))


def test_simulated_pipeline_aligns_trains_evaluates_exports_and_scores(fed, simulated):
    common = set(fed.guest["id"]) & set(fed.host["id"])
    assert simulated.intersection_size == len(common)
    assert simulated.metrics["auc"] > 0.95
    assert (fed.root / "reports" / "sim-1" / "report.html").stat().st_size > 10_000
    for party in ("bank", "partner"):
        store = ModelStore(party, fed.root / party / "store")
        assert store.get(MODEL).version == "sim-1"  # both promoted the same version
    # batch scoring inside the job: the bank's customers the partner knows are scored exactly as
    # the trained model scored its test rows; the others are reported missing, never scored
    scores = read_table(str(fed.root / "sim_scores.parquet"))
    assert len(scores) == len(fed.guest)
    test = read_table(str(fed.root / "reports" / "sim-1" / TEST_SCORES)).merge(scores, on="id")
    assert len(test) == round(0.25 * len(common))
    np.testing.assert_allclose(test["score_y"], test["score_x"], rtol=0, atol=1e-9)
    unknown = scores[~scores["id"].isin(common)]
    assert len(unknown) and unknown["score"].isna().all()


def test_two_served_parties_give_the_simulations_model(fed, served, simulated):
    job = write_job(fed, "federated")
    outcome = run_federated(job.model_copy(update={"job_id": "fed-1"}), fed.config("bank"))
    assert outcome.intersection_size == simulated.intersection_size
    assert outcome.metrics["auc"] == pytest.approx(simulated.metrics["auc"], abs=1e-12)
    assert outcome.metrics["ks"] == pytest.approx(simulated.metrics["ks"], abs=1e-12)
    assert outcome.model_id == MODEL and outcome.scored["scored"] == simulated.scored["scored"]
    # the job ran in the served processes: both job stores record it, both model stores hold it
    for party in ("bank", "partner"):
        record = JobStore.for_store(fed.root / party / "store", None).get("fed-1")
        assert record is not None and record.state == "succeeded"
        assert ModelStore(party, fed.root / party / "store").get(MODEL).version == "fed-1"
    sim = read_table(str(fed.root / "reports" / "sim-1" / TEST_SCORES))
    got = read_table(str(fed.root / "reports" / "fed-1" / TEST_SCORES))
    pd.testing.assert_frame_equal(got, sim, check_exact=False, rtol=0, atol=1e-12)


def test_a_submitted_job_shows_each_steps_progress_from_the_service(fed, served):
    job = write_job(fed, "watched", export=None, score=None)
    events = []
    run_federated(job.model_copy(update={"job_id": "watched-1"}), fed.config("bank"),
                  on_progress=events.append, submit=True, poll=0.05)
    units = {(e.step, e.info.get("unit")) for e in events}
    assert {("psi/partner", "points"), ("train", "batches")} <= units
    epochs = {e.info["epoch"] for e in events if e.info.get("unit") == "batches"}
    assert epochs and epochs <= set(range(1, job.steps.train.params["epochs"] + 1))
    assert all(a != b for a, b in zip(events, events[1:], strict=False))  # unchanged: not repeated


def test_embedded_guest_service_runs_the_same_job(fed, served):
    served[1].stop()  # the bank's own service is down: the job runs embedded in this process
    try:
        job = write_job(fed, "embedded", score=None, export=None)
        events = []
        outcome = run_federated(job.model_copy(update={"job_id": "emb-1"}), fed.config("bank"),
                                on_progress=events.append)
        assert outcome.metrics["auc"] > 0.95 and outcome.model_id is None
        assert {"psi", "train"} <= {e.step.split("/")[0] for e in events}
    finally:
        served[1] = kit.Served(fed.root / "bank" / "party.yaml", fed.ports["bank"],
                               fed.root / "bank" / "serve.log")


def test_the_hosts_policy_refuses_a_dataset_it_does_not_offer(fed, served):
    job = write_job(fed, "sneaky")
    job.datasets["partner"] = "secret"
    with pytest.raises(PolicyError, match="policy of 'partner' does not allow peer 'bank'"):
        run_federated(job.model_copy(update={"job_id": "sneaky-1"}), fed.config("bank"))


def test_only_the_guest_drives_a_job(fed):
    job = write_job(fed, "wrong")
    with pytest.raises(ConfigError, match="job.guest is 'bank' but the party config is 'partner'"):
        run_federated(job, fed.config("partner"))


def test_hosts_never_see_the_guests_paths(fed):
    job = write_job(fed, "private")
    sent = registry.for_hosts(job_params(job))
    text = repr(sent)
    assert str(fed.root) not in text and REDACTED in text
    assert sent["spec"]["steps"]["train"] == job.steps.train.model_dump(mode="json")


def test_a_failed_job_resubmitted_under_its_id_resumes_and_finishes(fed, served, simulated):
    bad = write_job(fed, "resume", score={"source": "bank.csv", "sink": "sqlite:///no/such/dir/x.db?table=s"})
    with pytest.raises(VflError):  # fails at its last step, after training and export
        run_federated(bad.model_copy(update={"job_id": "resume-1"}), fed.config("bank"))
    assert JobStore.for_store(fed.root / "partner" / "store", None).get("resume-1").state == "failed"
    good = write_job(fed, "resume", score={"source": "bank.csv", "sink": "resumed.parquet"})
    outcome = run_federated(good.model_copy(update={"job_id": "resume-1"}), fed.config("bank"))
    assert outcome.metrics["auc"] == pytest.approx(simulated.metrics["auc"], abs=1e-12)
    for party in ("bank", "partner"):
        assert JobStore.for_store(fed.root / party / "store", None).get("resume-1").state == "succeeded"
        log = (fed.root / party / "serve.log").read_text()
        assert "job 'resume-1' (job, role" in log and "accepted again (resuming)" in log
    assert "resuming hetero LR after epoch 5" in (fed.root / "bank" / "serve.log").read_text()
    assert len(read_table(str(fed.root / "resumed.parquet"))) == len(fed.guest)


def test_the_jobs_report_has_what_a_risk_analyst_expects_in_chromium(fed, simulated, tmp_path):
    from tests.evaluation.test_report import loaded_images, run_chromium

    out = fed.root / "reports" / "sim-1"
    page = out / "report.html"
    figures = 8  # roc, ks, lift, gain, score distribution, calibration, psi train/test, psi scoring
    assert loaded_images(tmp_path, page) == (figures, figures)
    dom = run_chromium(tmp_path, page, "--dump-dom").stdout
    for heading in ("Run", "Metrics", "Train vs test", "Cut-offs: configured, KS-optimal, base rate",
                    "Population stability (training vs test scores)",
                    "Population stability (training vs later scoring)",
                    "IV of bank's features (training rows)",
                    "IV of partner's features (names stay with partner)",
                    "Coefficients of bank's features (after preprocessing)"):
        assert f">{heading}</h2>" in dom, heading
    assert "figures loaded" not in dom
    metrics = json.loads((out / "metrics.json").read_text())
    run = metrics["run"]
    assert (run["model_id"], run["model_version"], run["job_id"], run["key_bits"]) == (MODEL, "sim-1", "sim-1", 1024)
    assert run["parties"] == {"bank": "guest", "partner": "host"}
    assert run["rows"]["intersection"] == simulated.intersection_size
    assert {"psi", "preprocess", "train"} <= set(run["seconds"])
    assert metrics["auc_ci95"][0] <= metrics["auc"] <= metrics["auc_ci95"][1]
    assert metrics["ks_ci95"][0] <= metrics["ks"] <= metrics["ks_ci95"][1]
    assert metrics["train"]["auc"] > 0.9 and 0 <= metrics["psi"] < 0.25 and metrics["psi_scoring"] >= 0
    rows = {r["rule"]: r for r in metrics["tables"]["thresholds"]}
    assert set(rows) == {"configured (0.5)", "KS-optimal", "base rate"}
    assert rows["KS-optimal"]["recall"] - rows["KS-optimal"]["false_positive_rate"] == pytest.approx(metrics["ks"])
    # rounded for reading; full precision in metrics.json
    assert f"<td>{round(metrics['auc'], 4):g}</td>" in dom and repr(metrics["auc"]) not in dom
    # each party sees its own features only: the partner's column names never reach the bank
    partner_columns = [c for c in fed.host.columns if c != "id"]
    anonymous = metrics["tables"]["IV of partner's features (names stay with partner)"]
    assert sorted(r["feature"] for r in anonymous) == sorted(f"partner #{i + 1}" for i in range(len(partner_columns)))
    assert not [c for c in partner_columns if f">{c}<" in dom]
    assert any(f">{c}<" in dom for c in fed.guest.columns if c not in ("id", "y"))
    own = read_table(str(fed.root / "partner" / "store" / "jobs" / "sim-1" / "evaluate" / "iv.csv"))
    assert set(own["feature"]) == set(partner_columns) and own["iv"].notna().all()
    shot = tmp_path / "report.png"
    run_chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1200,4000")
    assert shot.stat().st_size > 50_000

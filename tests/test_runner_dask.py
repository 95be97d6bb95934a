"""The pipeline job (PSI, HE logistic regression with 1024-bit keys, evaluation, export, batch
scoring) across two `vfl serve` processes over mutual TLS, each party computing on its own
Dask cluster (real TLS scheduler and 2 one-thread workers): the same PSI, HE-LR weights and
scores as on the local pool, also when a worker of each party is SIGKILLed mid-epoch.

Breast cancer data split by columns as in tests/test_runner.py: small and quick.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.parties import service_kit as kit
from tests.support.dask_cluster import dask_cluster
from vfl import demo
from vfl.config import load_job_config
from vfl.connectors import read_table, write_table
from vfl.jobs import TEST_SCORES
from vfl.jobs.common import JobOutcome
from vfl.parties.context import ProgressEvent
from vfl.runner import run_federated
from vfl.serving.batch import TIME_COLUMN, VERSION_COLUMN
from vfl.serving.bundle import ModelBundle
from vfl.store.models import ModelStore

MODEL = "breast"
PARTIES = ("partner", "bank")


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask-jobs")
    guest, host, guest_pre, host_pre, train = demo.breast_cancer_parties()
    guest, host = demo.partial_overlap(guest, host, seed=3)
    write_table(guest, str(root / "bank.csv"))
    write_table(host, str(root / "partner.parquet"))
    f = kit.Federation(root, list(PARTIES))
    f.datasets = {
        "bank": {"cancer": {"uri": str(root / "bank.csv"), "id_column": "id", "label": "y",
                            "id_types": {"id": "int"}}},
        "partner": {"cancer": {"uri": str(root / "partner.parquet"), "id_column": "id"}},
    }
    f.preprocessing = {"bank": {"cancer": guest_pre}, "partner": {"cancer": host_pre}}
    body = {
        "guest": "bank", "hosts": ["partner"],
        "datasets": {"bank": "cancer", "partner": "cancer"},
        "parties": {"bank": "bank/party.yaml", "partner": "partner/party.yaml"},
        "steps": {
            "psi": {}, "split": {"test_size": 0.25, "seed": 1}, "preprocess": {},
            "train": {"algorithm": "hetero_lr", "params": {**train, "key_bits": 1024, "random_state": 5}},
            "evaluate": {"out_dir": "reports"},
            "export": {"model_id": MODEL},
            "score": {"source": "bank.csv", "sink": "scores-JOB.parquet"},
        },
    }
    f.job_text = yaml.safe_dump(body)
    return f


def _run(fed, job_id: str, computes: dict[str, dict], on_progress=None) -> JobOutcome:
    """Serve both parties with their `compute:` sections and run the job, submitted."""
    for party in PARTIES:
        fed.write_config(party, plugins=[], compute=computes[party], datasets=fed.datasets[party],
                         preprocessing=fed.preprocessing[party])
    path = fed.root / f"{job_id}.yaml"
    path.write_text(fed.job_text.replace("JOB", job_id))
    served = [kit.Served(fed.root / p / "party.yaml", fed.ports[p], fed.root / f"{p}-{job_id}.log")
              for p in PARTIES]
    try:
        job = load_job_config(path).model_copy(update={"job_id": job_id})
        return run_federated(job, fed.config("bank"), on_progress=on_progress, submit=True, poll=0.2)
    finally:
        for proc in served:
            proc.stop()


def _weights(fed, version: str) -> np.ndarray:
    parts = []
    for party in ("bank", "partner"):
        store = ModelStore(party, fed.root / party / "store")
        part = ModelBundle.load(store.open(store.get(MODEL, version))).part
        parts.append(np.r_[part.coef_, getattr(part, "intercept_", [])])
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def local(fed):
    return _run(fed, "local-1", {p: {"engine": "local"} for p in PARTIES})


def _same_as_local(fed, local: JobOutcome, outcome: JobOutcome, job_id: str) -> None:
    assert outcome.intersection_size == local.intersection_size
    # HE-LR: the fixed-point tolerance of the fidelity tests (tests/algorithms/test_hetero_lr.py)
    np.testing.assert_allclose(_weights(fed, job_id), _weights(fed, "local-1"), rtol=0, atol=1e-12)
    want = read_table(str(fed.root / "reports" / "local-1" / TEST_SCORES))
    got = read_table(str(fed.root / "reports" / job_id / TEST_SCORES))
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-12)
    # batch scoring: the same scores, bit for bit (each run stamps its model version, its job
    # id, and the time it scored)
    scored = read_table(str(fed.root / f"scores-{job_id}.parquet"))
    assert set(scored[VERSION_COLUMN]) == {job_id}
    stamps = [VERSION_COLUMN, TIME_COLUMN]
    pd.testing.assert_frame_equal(
        scored.drop(columns=stamps),
        read_table(str(fed.root / "scores-local-1.parquet")).drop(columns=stamps), check_exact=True)
    assert outcome.scored["scored"] == local.scored["scored"]


def test_the_job_on_dask_gives_the_local_psi_weights_and_scores(fed, local, tmp_path):
    events: list[ProgressEvent] = []
    with dask_cluster(tmp_path / "bank") as bank, dask_cluster(tmp_path / "partner") as partner:
        outcome = _run(fed, "dask-1", {"bank": bank.compute_section(),
                                       "partner": partner.compute_section()}, events.append)
    _same_as_local(fed, local, outcome, "dask-1")
    cluster = [e for e in events if e.step == "cluster"]  # the bank's cluster's tasks, as progress
    assert cluster and cluster[-1].done == cluster[-1].total > 0


def test_the_job_survives_a_worker_killed_mid_epoch(fed, local, tmp_path):
    killed: list[ProgressEvent] = []
    lock = threading.Lock()
    with dask_cluster(tmp_path / "bank") as bank, dask_cluster(tmp_path / "partner") as partner:

        def kill_mid_epoch(event: ProgressEvent) -> None:
            # an epoch has begun and not all its batches are done (the status is polled every
            # 0.2 s, and an epoch of this small table has 3 batches: waiting for a batch count
            # of 1 or 2 can miss them all on a busy machine)
            if (event.step.startswith("train") and event.info.get("unit") == "batches"
                    and event.done < event.total):
                with lock:
                    if not killed:  # once: one worker of each party's cluster
                        killed.append(event)
                        bank.kill_worker(0)
                        partner.kill_worker(1)

        outcome = _run(fed, "dask-kill", {"bank": bank.compute_section(),
                                          "partner": partner.compute_section()}, kill_mid_epoch)
        assert killed, "no training progress was seen within an epoch"
        assert bank.workers[0].poll() is not None and partner.workers[1].poll() is not None
    _same_as_local(fed, local, outcome, "dask-kill")

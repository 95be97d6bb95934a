"""The job pipeline in simulation: the whole job is validated before any party does work, and
each party's configured preprocessing runs unless the job says `preprocess: false`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vfl.config import load_job_config
from vfl.connectors import write_table
from vfl.errors import ConfigError, DataError
from vfl.runner import run_simulated

N = 300
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fed(tmp_path):
    """A bank (labels, numbers) and a partner with a raw categorical column, as configs."""
    rng = np.random.default_rng(0)
    ids = np.arange(1, N + 1)
    segment = rng.choice(["retail", "sme", "corporate"], N)
    x = rng.normal(size=(N, 2))
    y = ((x[:, 0] + (segment == "sme") + rng.logistic(size=N) * 0.5) > 0.5).astype(int)
    write_table(pd.DataFrame({"id": ids, "y": y, "x0": x[:, 0], "x1": x[:, 1]}), str(tmp_path / "bank.parquet"))
    write_table(pd.DataFrame({"id": ids, "segment": segment, "amount": rng.lognormal(3, 1, N)}),
                str(tmp_path / "partner.parquet"))
    bank = {"name": "bank", "store": {"path": "bank-store"},
            "datasets": {"credit": {"uri": "bank.parquet", "id_column": "id", "label": "y"}},
            "preprocessing": {"credit": {"numeric": {"columns": ["x0", "x1"], "scale": "standard"}}}}
    partner = {"name": "partner", "store": {"path": "partner-store"},
               "datasets": {"credit": {"uri": "partner.parquet", "id_column": "id",
                                       "categorical": ["segment"]}},
               "preprocessing": {"credit": {
                   "numeric": {"columns": ["amount"], "clip": [0.01, 0.99], "scale": "standard"},
                   "categorical": {"columns": ["segment"], "encode": "onehot"}}}}
    for name, body in (("bank", bank), ("partner", partner)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(body))

    def job(steps: dict, **bank_dataset) -> object:
        if bank_dataset:
            bank["datasets"]["credit"].update(bank_dataset)
            (tmp_path / "bank.yaml").write_text(yaml.safe_dump(bank))
        body = {"guest": "bank", "hosts": ["partner"], "datasets": {"bank": "credit", "partner": "credit"},
                "parties": {"bank": "bank.yaml", "partner": "partner.yaml"},
                "steps": {"train": {"params": {"epochs": 1, "key_bits": 1024}},
                          "evaluate": {"out_dir": "reports"}, **steps}}
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(body))
        return load_job_config(tmp_path / "job.yaml")

    job.root = tmp_path  # type: ignore[attr-defined]
    job.partner = partner  # type: ignore[attr-defined]
    return job


def run_recording(job) -> tuple[list[str], Exception | None]:
    """Run the job; the steps that reported progress, and the error if any."""
    steps: list[str] = []
    try:
        run_simulated(job, on_progress=lambda e: steps.append(e.step))
    except Exception as exc:  # noqa: BLE001 - returned for the test to look at
        return steps, exc
    return steps, None


def test_a_job_without_preprocess_runs_every_partys_preprocessing(fed, caplog):
    job = fed({})  # no `preprocess:` at all
    steps: list[str] = []
    with caplog.at_level(logging.INFO, logger="vfl.party"):
        outcome = run_simulated(job, on_progress=lambda e: steps.append(e.step))
    assert [s for s in steps if s.startswith("psi")], "PSI reports progress (the tests below rely on it)"
    ran = [r.getMessage() for r in caplog.records if "preprocessed" in r.getMessage()]
    assert any("[bank " in m and "2 raw columns into 2 features" in m for m in ran), ran
    assert any("[partner " in m and "2 raw columns into 4 features" in m for m in ran), ran
    assert outcome.metrics["auc"] > 0.6


def test_preprocess_false_with_a_raw_text_column_fails_before_psi(fed):
    steps, error = run_recording(fed({"preprocess": False}))
    assert isinstance(error, DataError)
    assert ("party 'partner', dataset 'credit': column(s) ['segment'] are not numeric" in str(error)
            and "preprocess: false" in str(error))
    assert not [s for s in steps if s.startswith("psi")], steps


def test_columns_are_checked_against_the_preprocessing_before_psi(fed):
    fed.partner["preprocessing"]["credit"]["numeric"]["columns"] = ["amount", "segment"]
    fed.partner["preprocessing"]["credit"]["categorical"]["columns"] = ["amount"]
    (fed.root / "partner.yaml").write_text(yaml.safe_dump(fed.partner))
    steps, error = run_recording(fed({}))
    assert isinstance(error, DataError)
    assert "party 'partner', dataset 'credit': column 'segment' is" in str(error)
    assert "not numeric; group 'numeric'" in str(error)
    assert not [s for s in steps if s.startswith("psi")], steps


def test_string_labels_fail_at_load_in_seconds_naming_the_column(fed, tmp_path):
    frame = pd.read_parquet(tmp_path / "bank.parquet")
    frame["status"] = np.where(frame.pop("y") == 1, "bad", "good")
    write_table(frame, str(tmp_path / "bank.parquet"))
    job = fed({}, label="status")
    start = time.perf_counter()
    steps, error = run_recording(job)
    assert time.perf_counter() - start < 5
    assert isinstance(error, DataError)
    assert "label column 'status' must be binary 0/1, found values ['bad', 'good']" in str(error)
    assert not [s for s in steps if s.startswith("psi")], steps
    outcome = run_simulated(fed({}, label="status", positive_label="bad"))
    assert outcome.metrics["auc"] > 0.6


@pytest.mark.parametrize(("params", "expected"), [
    ({"epoch": 3}, r"job\.yaml: steps\.train\.params: unknown parameter 'epoch'; did you mean 'epochs'\?"),
    ({"lr_schedule": "inverse_sqr"}, r"job\.yaml: steps\.train\.params: lr_schedule must be one of "
                                     r".*got 'inverse_sqr'; did you mean 'inverse_sqrt'\?"),
])
def test_a_typo_or_bad_value_in_train_params_fails_when_the_job_loads(fed, params, expected):
    with pytest.raises(ConfigError, match=expected):
        fed({"train": {"params": params}})


def test_an_unknown_key_anywhere_suggests_the_closest(fed):
    with pytest.raises(ConfigError, match=r"job\.yaml: steps\.psi\.cardinaltiy_only: .*did you mean 'cardinality_only'\?"):
        fed({"psi": {"cardinaltiy_only": True}})
    with pytest.raises(ConfigError, match=r"job\.yaml: steps\.spilt: .*did you mean 'split'\?"):
        fed({"spilt": {}})


def test_id_normalisation_from_both_dataset_configs_reaches_psi(fed, tmp_path):
    bank = pd.read_parquet(tmp_path / "bank.parquet")
    partner = pd.read_parquet(tmp_path / "partner.parquet")
    bank["id"] = [f"Cust-{i:04d}" for i in bank["id"]]
    partner["id"] = [f" CUST-{i:04d} " if i % 2 else f"cust-{i:04d}" for i in partner["id"]]
    write_table(bank, str(tmp_path / "bank.parquet"))
    write_table(partner, str(tmp_path / "partner.parquet"))
    norm = {"strip": True, "lower": True}
    steps, error = run_recording(fed({}, id_normalize=norm))  # the bank's only: refused
    assert "id normalisation differs" in str(error)
    fed.partner["datasets"]["credit"]["id_normalize"] = norm
    (tmp_path / "partner.yaml").write_text(yaml.safe_dump(fed.partner))
    assert run_simulated(fed({}, id_normalize=norm)).intersection_size == N


POOL_PROBE = """
import time

import psutil
from vfl.config import load_job_config
from vfl.errors import DataError
from vfl.runner import run_simulated

try:
    run_simulated(load_job_config("job.yaml"))
except DataError:
    pass  # the bank's labels fail at load: no PSI, no crypto
me, workers, deadline = psutil.Process(), [], time.monotonic() + 60
while len(workers) < 2 and time.monotonic() < deadline:  # the fork server's children
    workers = [p for p in me.children(recursive=True) if p.ppid() != me.pid]
    time.sleep(0.1)
print(len(workers))
"""


def test_a_simulation_starts_the_pool_while_the_parties_load_data(fed, tmp_path):
    frame = pd.read_parquet(tmp_path / "bank.parquet")
    frame["y"] = frame["y"] + 1  # {1, 2}: fails when the bank's data loads
    write_table(frame, str(tmp_path / "bank.parquet"))
    fed({})
    (tmp_path / "probe.py").write_text(POOL_PROBE)
    env = {**os.environ, "PYTHONPATH": str(REPO), "VFL_WORKERS": "2"}
    done = subprocess.run([sys.executable, "probe.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "2"  # both workers started although no step used them yet

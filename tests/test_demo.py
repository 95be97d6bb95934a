"""`vfl demo` (the README's first command): end to end on the shared data, and on the bundled
data set when the shared folder is absent, so a fresh clone anywhere works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vfl import demo

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_command_on_the_shared_data_prints_auc_above_0_70(shared_data, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "vfl.cli", "demo", "--data-dir", str(shared_data), "--out",
         str(tmp_path), "--key-bits", "1024"],
        capture_output=True, text=True, timeout=1200, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["auc"] >= 0.70 and summary["ks"] > 0.3
    assert summary["intersection_size"] == 18_000  # 30,000 customers, 20% unknown to each side
    assert Path(summary["report"]).exists()
    assert summary["batch_scoring"]["scored"] == 18_000 and summary["batch_scoring"]["rows"] == 24_000
    assert all(s["score"] is not None or s["missing"] for s in summary["online_scores"])
    assert "[bank psi" in done.stderr  # progress lines as it goes


def test_demo_without_shared_data_runs_on_bundled_data(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "SHARED_CANDIDATES", ())
    summary = demo.run_demo(out_dir=tmp_path, key_bits=1024)
    assert summary["data"].startswith("scikit-learn's breast cancer")
    assert summary["auc"] > 0.95
    assert summary["model"]["id"] == demo.MODEL_ID and len(summary["online_scores"]) == 5


def test_demo_preprocessing_clips_and_scales_every_numeric_column():
    from vfl import demo_data

    _, _, guest_pre, host_pre, _ = demo.breast_cancer_parties()
    for pre in (guest_pre, host_pre, demo_data.UCI_GUEST_PREPROCESSING, demo_data.UCI_HOST_PREPROCESSING):
        assert pre["numeric"]["clip"] == [0.01, 0.99] and pre["numeric"]["scale"] == "standard"

"""Kill an HE logistic regression job mid-training, restart it, and get the same model.

The job (guest + host, simulated in one OS process) runs as a subprocess; it is SIGKILLed as
soon as the guest's checkpoint of the 2nd epoch is on disk, then rerun with the same
checkpoint directories. Its final weights must equal an uninterrupted run's with the same seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

JOB = r'''
import sys
import numpy as np
from vfl.algorithms.hetero_lr import HeteroLogisticRegression, host_fit
from vfl.parties import simulate

root, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
Xg, Xh = rng.normal(size=(300, 4)), rng.normal(size=(300, 5))
y = (Xg.sum(axis=1) - Xh[:, :2].sum(axis=1) + rng.logistic(size=300) > 0).astype(int)
est = HeteroLogisticRegression(
    epochs=8, batch_size=30, key_bits=1024, optimizer="momentum", learning_rate=0.2, tol=None,
    random_state=3, checkpoint_dir=None if root == "-" else f"{root}/guest",
)
ran = []
result = simulate(
    {"bank": (lambda ctx: est.fit(ctx, Xg, y), {}),
     "partner": (host_fit, {"X": Xh, "checkpoint_dir": None if root == "-" else f"{root}/host"})},
    roles={"bank": "guest", "partner": "host"},
    on_progress=lambda e: ran.append(e.done) if e.party == "bank" else None,
)
np.savez(out, guest=np.r_[est.coef_, est.intercept_], host=result["partner"].coef_, ran=np.array(ran))
'''

ROOT = Path(__file__).resolve().parents[2]


def job(tmp: Path, root: str, out: Path) -> subprocess.Popen:
    script = tmp / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), root, str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_job_resumes_from_last_checkpoint_and_reaches_the_same_model(tmp_path):
    ckpt = tmp_path / "ckpt"
    victim = job(tmp_path, str(ckpt), tmp_path / "killed.npz")
    marker = ckpt / "guest" / "epoch_00001.json"
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint of the 2nd epoch after 120 s"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.npz").exists(), "the job finished before it was killed"
    host_done = sorted(p.name for p in (ckpt / "host").glob("*.json"))
    assert host_done and host_done[-1] <= "epoch_00002.json"

    resumed, full = job(tmp_path, str(ckpt), tmp_path / "resumed.npz"), job(tmp_path, "-", tmp_path / "full.npz")
    for proc in (resumed, full):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "full.npz")
    assert b["ran"].tolist() == list(range(1, 9))
    assert a["ran"][0] >= 2 and a["ran"].tolist() == list(range(a["ran"][0], 9)), "did not resume"
    np.testing.assert_allclose(a["guest"], b["guest"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a["host"], b["host"], rtol=0, atol=1e-12)
    assert np.abs(b["host"]).max() > 0.05

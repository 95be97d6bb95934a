"""Kill a party mid-training, restart it, rerun the job: it resumes and reaches the same model.

The bank and the partner each run `vfl serve` in their own OS process (mutual TLS on
loopback); this module is loaded by both services as a plugin that offers "test-hetero-lr".
The partner's service is SIGKILLed as soon as its checkpoint of the 2nd epoch is on disk; the
bank's job fails naming the partner; the partner's service is restarted and the bank runs the
training again under the same run name (same checkpoint directories). Both parties resume from
the newest epoch both have, and end with the weights of an uninterrupted run with the same seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.algorithms.training_kit import ServedTraining, host_epochs, resumed_after
from tests.parties import service_kit as kit
from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression, host_fit
from vfl.algorithms.hetero_lr.model import LRGuestPart, LRHostPart
from vfl.parties import simulate
from vfl.parties.federation import connect_federation
from vfl.parties.registry import register

PROTOCOL = "test-hetero-lr"
PARAMS = dict(epochs=8, batch_size=30, key_bits=1024, optimizer="momentum", learning_rate=0.2,
              tol=None, random_state=3)
ROLES = {"bank": "guest", "partner": "host"}
SERVED = ServedTraining(PROTOCOL, ROLES)


@register(PROTOCOL)
def served_hetero_lr(ctx: Any, party: Any, params: Any) -> Any:
    """Train on the party's 'train' dataset; checkpoints and model part under params['run']."""
    home = party.store_dir / "hetero_lr" / str(params["run"])
    data = party.dataset("train")
    if ctx.role == "guest":
        est = HeteroLogisticRegression(**PARAMS, checkpoint_dir=home / "ckpt")
        est.fit(ctx, data.X, data.y)
        est.part_.save(home / "model")
        return {"epochs": len(est.history_)}
    host_fit(ctx, data.X, checkpoint_dir=home / "ckpt").save(home / "model")
    return None  # the host's weights stay on the host (a job's result is visible to the guest)


def make_data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Values on a 1/64 grid, so the CSV round trip is exact on both sides."""
    rng = np.random.default_rng(7)
    Xg, Xh = np.round(rng.normal(size=(300, 4)) * 64) / 64, np.round(rng.normal(size=(300, 5)) * 64) / 64
    y = (Xg.sum(axis=1) - Xh[:, :2].sum(axis=1) + rng.logistic(size=300) > 0).astype(int)
    return (pd.DataFrame(Xg, columns=[f"g{j}" for j in range(4)]), y,
            pd.DataFrame(Xh, columns=[f"h{j}" for j in range(5)]))


def uninterrupted(Xg: pd.DataFrame, y: np.ndarray, Xh: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    est = HeteroLogisticRegression(**PARAMS)
    out = simulate({"bank": (lambda ctx: est.fit(ctx, Xg, y), {}), "partner": (host_fit, {"X": Xh})},
                   roles=ROLES)
    return np.r_[est.coef_, est.intercept_], out["partner"].coef_


@pytest.mark.slow
def test_killed_party_service_resumes_from_last_checkpoint_and_reaches_the_same_model(tmp_path):
    Xg, y, Xh = make_data()
    fed = SERVED.federation(tmp_path, __name__, Xg, y, {"partner": Xh})
    run = {p: tmp_path / p / "store" / "hetero_lr" / "r1" for p in ROLES}
    serve = {p: (fed.root / p / "party.yaml", fed.ports[p]) for p in ROLES}
    served = {p: kit.Served(*serve[p], tmp_path / f"{p}.log") for p in ("partner", "bank")}
    try:
        with connect_federation(fed.config("bank"), embedded=False) as client:
            SERVED.kill_host_at(client, served, "partner", run["partner"] / "ckpt" / "epoch_00001.json",
                                {"run": "r1"}, checkpoint_timeout=120, fail_timeout=60, what="2nd-epoch")
            assert not (run["bank"] / "model").exists(), "the job finished before the partner was killed"
            saved = sorted(p.name for p in (run["partner"] / "ckpt").glob("*.json"))
            assert saved[-1] < "epoch_00007.json"

            served["partner"] = kit.Served(*serve["partner"], tmp_path / "partner2.log")
            assert client.job_status("partner", "first").state == "failed"
            info = SERVED.rerun_when_reachable(client, {"run": "r1"})
            assert info.result == {"epochs": 8}
    finally:
        for proc in served.values():
            proc.stop()

    resumed = resumed_after(served["bank"].log(), "hetero LR")
    assert len(resumed) == 1 and resumed[0] >= 2, "the rerun did not resume from a checkpoint"
    host_trained = host_epochs((tmp_path / "partner2.log").read_text(), "hetero LR", 8)
    assert host_trained == list(range(resumed[0] + 1, 9)), "the restarted partner did not resume"

    guest, host = LRGuestPart.load(run["bank"] / "model"), LRHostPart.load(run["partner"] / "model")
    want_guest, want_host = uninterrupted(Xg, y, Xh)
    np.testing.assert_allclose(np.r_[guest.coef_, guest.intercept_], want_guest, rtol=0, atol=1e-12)
    np.testing.assert_allclose(host.coef_, want_host, rtol=0, atol=1e-12)
    assert np.abs(want_host).max() > 0.05

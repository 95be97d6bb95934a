"""Two hosts and a guest, each its own `vfl serve` process (mutual TLS): a host is killed at a
tree boundary, the job fails naming it, the host's service restarts, the bank runs the job
again and every party resumes from the newest tree all of them checkpointed; the model routes
every training row as an uninterrupted run does, to the last bit, and its federated scores
equal its trees evaluated centrally.

This module is loaded by the services as a plugin that offers "test-secureboost".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.algorithms.secureboost.central import central_part, joined
from tests.algorithms.training_kit import ServedTraining, host_epochs, resumed_after
from tests.parties import service_kit as kit
from vfl.algorithms.secureboost.estimator import SecureBoostClassifier, host_fit, host_predict
from vfl.algorithms.secureboost.model import SBGuestPart, SBHostPart
from vfl.parties import simulate
from vfl.parties.federation import connect_federation
from vfl.parties.registry import register

PROTOCOL = "test-secureboost"
PARAMS = dict(n_estimators=6, max_depth=2, max_bin=8, key_bits=1024, learning_rate=0.3, random_state=3)
HOSTS = ["partner", "p2"]
ROLES = {"bank": "guest", "partner": "host", "p2": "host"}
SERVED = ServedTraining(PROTOCOL, ROLES)


@register(PROTOCOL)
def served_secureboost(ctx: Any, party: Any, params: Any) -> Any:
    """Train on the party's 'train' dataset; checkpoints and model part under params['run']."""
    home = party.store_dir / "secureboost" / str(params["run"])
    data = party.dataset("train")
    if ctx.role == "guest":
        est = SecureBoostClassifier(**PARAMS, checkpoint_dir=home / "ckpt")
        est.fit(ctx, data.X, data.y)
        est.part_.save(home / "model")
        return {"trees": len(est.history_)}
    host_fit(ctx, data.X, checkpoint_dir=home / "ckpt").save(home / "model")
    return None


def make_data() -> tuple[pd.DataFrame, np.ndarray, dict[str, pd.DataFrame]]:
    """Values on a 1/64 grid, so the CSV round trip is exact on every side."""
    rng = np.random.default_rng(11)
    blocks = [np.round(rng.normal(size=(300, w)) * 64) / 64 for w in (3, 4, 3)]
    y = (blocks[0][:, 0] - blocks[1][:, 1] + blocks[2][:, 2] + 0.5 * rng.logistic(size=300) > 0).astype(int)
    frames = [pd.DataFrame(b, columns=[f"{p}{j}" for j in range(b.shape[1])]) for p, b in zip("gqr", blocks, strict=True)]
    return frames[0], y, dict(zip(HOSTS, frames[1:], strict=True))


def uninterrupted(Xg: pd.DataFrame, y: np.ndarray, Xh: dict[str, pd.DataFrame]):
    """The same training in one process, and its federated scores of the training rows."""
    est = SecureBoostClassifier(**PARAMS)

    def bank(ctx):
        est.fit(ctx, Xg, y)
        return est.decision_function(ctx, Xg)

    def host(ctx, X):
        part = host_fit(ctx, X)
        host_predict(ctx, X, part)
        return part

    out = simulate({"bank": (bank, {}), **{h: (host, {"X": Xh[h]}) for h in HOSTS}}, roles=ROLES)
    return est.part_, {h: out[h] for h in HOSTS}, out["bank"]


@pytest.mark.slow
def test_two_hosts_resume_after_a_killed_host_at_a_tree_boundary(tmp_path):
    Xg, y, Xh = make_data()
    fed = SERVED.federation(tmp_path, __name__, Xg, y, Xh)
    run = {p: tmp_path / p / "store" / "secureboost" / "r1" for p in ROLES}
    serve = {p: (fed.root / p / "party.yaml", fed.ports[p]) for p in ROLES}
    served = {p: kit.Served(*serve[p], tmp_path / f"{p}.log") for p in ("partner", "p2", "bank")}
    try:
        with connect_federation(fed.config("bank"), embedded=False) as client:
            SERVED.kill_host_at(client, served, "partner", run["partner"] / "ckpt" / "epoch_00001.json",
                                {"run": "r1"}, checkpoint_timeout=180, fail_timeout=90, what="2nd-tree")
            assert not (run["bank"] / "model").exists(), "the job finished before the host was killed"

            served["partner"] = kit.Served(*serve["partner"], tmp_path / "partner2.log")
            info = SERVED.rerun_when_reachable(client, {"run": "r1"})
            assert info.result == {"trees": 6}
    finally:
        for proc in served.values():
            proc.stop()

    resumed = resumed_after(served["bank"].log(), "SecureBoost")
    assert len(resumed) == 1 and resumed[0] >= 2, "the rerun did not resume from a checkpoint"
    host_trees = host_epochs((tmp_path / "partner2.log").read_text(), "SecureBoost", 6)
    assert host_trees == list(range(resumed[0] + 1, 7)), "the restarted host did not resume"

    guest = SBGuestPart.load(run["bank"] / "model")
    hosts = {h: SBHostPart.load(run[h] / "model") for h in HOSTS}
    assert guest.hosts == sorted(HOSTS) and all(len(p.feature) for p in hosts.values()), "both hosts split"
    want_guest, want_hosts, want_scores = uninterrupted(Xg, y, Xh)
    J = joined([Xg, *[Xh[h] for h in guest.hosts]])
    np.testing.assert_array_equal(guest.value, want_guest.value)
    np.testing.assert_array_equal(guest.owner, want_guest.owner)
    np.testing.assert_allclose(central_part(guest, hosts).decision_function(J, []), want_scores, rtol=0, atol=1e-12)
    np.testing.assert_allclose(central_part(want_guest, want_hosts).decision_function(J, []), want_scores,
                               rtol=0, atol=1e-6)

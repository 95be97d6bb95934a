"""Two hosts and a guest, each its own `vfl serve` process (mutual TLS): a host is killed at a
tree boundary, the job fails naming it, the host's service restarts, the bank runs the job
again and every party resumes from the newest tree all of them checkpointed; the model routes
every training row as an uninterrupted run does, to the last bit, and its federated scores
equal its trees evaluated centrally.

This module is loaded by the services as a plugin that offers "test-secureboost".
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.algorithms.secureboost.central import central_part, joined
from tests.parties import service_kit as kit
from vfl.algorithms.secureboost.estimator import SecureBoostClassifier, host_fit, host_predict
from vfl.algorithms.secureboost.model import SBGuestPart, SBHostPart
from vfl.errors import PeerError
from vfl.parties import simulate
from vfl.parties.federation import connect_federation
from vfl.parties.registry import register

PROTOCOL = "test-secureboost"
PARAMS = dict(n_estimators=6, max_depth=2, max_bin=8, key_bits=1024, learning_rate=0.3, random_state=3)
HOSTS = ["partner", "p2"]
ROLES = {"bank": "guest", "partner": "host", "p2": "host"}
DATASETS = {p: ["train"] for p in ROLES}


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


def federation(root: Path, Xg: pd.DataFrame, y: np.ndarray, Xh: dict[str, pd.DataFrame]) -> kit.Federation:
    fed = kit.Federation(root, list(ROLES))
    ids = pd.Series(np.arange(len(y)), name="id")
    pd.concat([ids, Xg, pd.Series(y, name="y")], axis=1).to_csv(root / "bank.csv", index=False)
    plugins = ["tests.parties.service_kit", __name__]
    fed.write_config("bank", plugins=plugins, datasets={
        "train": {"uri": str(root / "bank.csv"), "id_column": "id", "label": "y"}})
    for h in HOSTS:
        pd.concat([ids, Xh[h]], axis=1).to_csv(root / f"{h}.csv", index=False)
        fed.write_config(h, plugins=plugins, datasets={"train": {"uri": str(root / f"{h}.csv"), "id_column": "id"}},
                         policy={"allow": [{"peers": ["bank"], "protocols": [PROTOCOL], "datasets": ["train"]}]})
    return fed


def rerun_when_reachable(client: Any, params: dict[str, Any]) -> Any:
    """Submit again until the bank's service reaches the restarted host (gRPC reconnect backoff)."""
    deadline = time.monotonic() + 150
    for attempt in itertools.count():
        try:
            return client.run(f"again-{attempt}", PROTOCOL, params, ROLES, DATASETS, timeout=300)
        except PeerError as exc:
            if "while starting job" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


@pytest.mark.slow
def test_two_hosts_resume_after_a_killed_host_at_a_tree_boundary(tmp_path):
    Xg, y, Xh = make_data()
    fed = federation(tmp_path, Xg, y, Xh)
    run = {p: tmp_path / p / "store" / "secureboost" / "r1" for p in ROLES}
    serve = {p: (fed.root / p / "party.yaml", fed.ports[p]) for p in ROLES}
    served = {p: kit.Served(*serve[p], tmp_path / f"{p}.log") for p in ("partner", "p2", "bank")}
    try:
        with connect_federation(fed.config("bank"), embedded=False) as client:
            client.start_job("bank", "first", PROTOCOL, {"run": "r1"}, ROLES, DATASETS)
            marker = run["partner"] / "ckpt" / "epoch_00001.json"
            deadline = time.monotonic() + 180
            while not marker.exists():
                assert time.monotonic() < deadline, f"no 2nd-tree checkpoint:\n{served['bank'].log()[-3000:]}"
                time.sleep(0.005)
            served["partner"].kill()
            info = client.wait_job("bank", "first", timeout=90, poll=0.1)
            assert info.state == "failed" and "partner" in (info.error or ""), info
            assert not (run["bank"] / "model").exists(), "the job finished before the host was killed"

            served["partner"] = kit.Served(*serve["partner"], tmp_path / "partner2.log")
            info = rerun_when_reachable(client, {"run": "r1"})
            assert info.result == {"trees": 6}
    finally:
        for proc in served.values():
            proc.stop()

    resumed = [int(t) for t in re.findall(r"resuming SecureBoost after epoch (\d+)", served["bank"].log())]
    assert len(resumed) == 1 and resumed[0] >= 2, "the rerun did not resume from a checkpoint"
    host_trees = [int(t) for t in re.findall(r"SecureBoost host \[he\] epoch (\d+)/6", (tmp_path / "partner2.log").read_text())]
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

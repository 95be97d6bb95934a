"""Kill a party mid-training, restart it, rerun the job: it resumes and reaches the same model.

The bank and the partner each run `vfl serve` in their own OS process (mutual TLS on
loopback); this module is loaded by both services as a plugin that offers "test-hetero-lr".
The partner's service is SIGKILLed as soon as its checkpoint of the 2nd epoch is on disk; the
bank's job fails naming the partner; the partner's service is restarted and the bank runs the
training again under the same run name (same checkpoint directories). Both parties resume from
the newest epoch both have, and end with the weights of an uninterrupted run with the same seed.
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

from tests.parties import service_kit as kit
from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression, host_fit
from vfl.algorithms.hetero_lr.model import LRGuestPart, LRHostPart
from vfl.errors import PeerError
from vfl.parties import simulate
from vfl.parties.federation import connect_federation
from vfl.parties.registry import register

PROTOCOL = "test-hetero-lr"
PARAMS = dict(epochs=8, batch_size=30, key_bits=1024, optimizer="momentum", learning_rate=0.2,
              tol=None, random_state=3)
ROLES = {"bank": "guest", "partner": "host"}
DATASETS = {"bank": ["train"], "partner": ["train"]}


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


def federation(root: Path, Xg: pd.DataFrame, y: np.ndarray, Xh: pd.DataFrame) -> kit.Federation:
    fed = kit.Federation(root, ["bank", "partner"])
    ids = pd.Series(np.arange(len(y)), name="id")
    pd.concat([ids, Xg, pd.Series(y, name="y")], axis=1).to_csv(root / "bank.csv", index=False)
    pd.concat([ids, Xh], axis=1).to_csv(root / "partner.csv", index=False)
    plugins = ["tests.parties.service_kit", __name__]
    fed.write_config("bank", plugins=plugins, datasets={
        "train": {"uri": str(root / "bank.csv"), "id_column": "id", "label": "y"}})
    fed.write_config("partner", plugins=plugins, datasets={
        "train": {"uri": str(root / "partner.csv"), "id_column": "id"}},
        policy={"allow": [{"peers": ["bank"], "protocols": [PROTOCOL], "datasets": ["train"]}]})
    return fed


def rerun_when_reachable(client: Any, params: dict[str, Any]) -> Any:
    """Submit the job again until the bank's service reaches the restarted partner.

    gRPC reconnects to a peer that was down only after its reconnect backoff; until then the
    bank's service fails the job while starting the partner's role, before any role runs.
    """
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
def test_killed_party_service_resumes_from_last_checkpoint_and_reaches_the_same_model(tmp_path):
    Xg, y, Xh = make_data()
    fed = federation(tmp_path, Xg, y, Xh)
    run = {p: tmp_path / p / "store" / "hetero_lr" / "r1" for p in ROLES}
    serve = {p: (fed.root / p / "party.yaml", fed.ports[p]) for p in ROLES}
    partner = kit.Served(*serve["partner"], tmp_path / "partner.log")
    bank = kit.Served(*serve["bank"], tmp_path / "bank.log")
    try:
        with connect_federation(fed.config("bank"), embedded=False) as client:
            client.start_job("bank", "first", PROTOCOL, {"run": "r1"}, ROLES, DATASETS)
            marker = run["partner"] / "ckpt" / "epoch_00001.json"
            deadline = time.monotonic() + 120
            while not marker.exists():
                assert time.monotonic() < deadline, f"no 2nd-epoch checkpoint after 120 s:\n{bank.log()[-3000:]}"
                time.sleep(0.005)
            partner.kill()
            info = client.wait_job("bank", "first", timeout=60, poll=0.1)
            assert info.state == "failed" and "partner" in (info.error or ""), info
            assert not (run["bank"] / "model").exists(), "the job finished before the partner was killed"
            saved = sorted(p.name for p in (run["partner"] / "ckpt").glob("*.json"))
            assert saved[-1] < "epoch_00007.json"

            partner = kit.Served(*serve["partner"], tmp_path / "partner2.log")
            assert client.job_status("partner", "first").state == "failed"
            info = rerun_when_reachable(client, {"run": "r1"})
            assert info.result == {"epochs": 8}
    finally:
        partner.stop()
        bank.stop()

    resumed = [int(e) for e in re.findall(r"resuming hetero LR after epoch (\d+)", bank.log())]
    assert len(resumed) == 1 and resumed[0] >= 2, "the rerun did not resume from a checkpoint"
    host_epochs = [int(e) for e in re.findall(r"hetero LR host \[he\] epoch (\d+)/8", (tmp_path / "partner2.log").read_text())]
    assert host_epochs == list(range(resumed[0] + 1, 9)), "the restarted partner did not resume"

    guest, host = LRGuestPart.load(run["bank"] / "model"), LRHostPart.load(run["partner"] / "model")
    want_guest, want_host = uninterrupted(Xg, y, Xh)
    np.testing.assert_allclose(np.r_[guest.coef_, guest.intercept_], want_guest, rtol=0, atol=1e-12)
    np.testing.assert_allclose(host.coef_, want_host, rtol=0, atol=1e-12)
    assert np.abs(want_host).max() > 0.05

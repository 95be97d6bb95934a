"""The training session's checkpoints, shared by every algorithm: a party's nested state
round-trips exactly, an interrupted save does not count, another plan's directory is refused,
and a resumed run starts from the newest complete epoch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vfl.algorithms.hetero_lr import HeteroLogisticRegression, host_fit
from vfl.algorithms.session import EpochOutcome, SessionCheckpoints, run_epochs
from vfl.config import load_job_config
from vfl.errors import ConfigError
from vfl.parties import simulate


def _state(step: float) -> dict:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    return {
        "arrays": {"w": np.arange(4.0) * step, "opt_t": np.array(3)},
        "history": [{"epoch": 1, "val_auc": 0.75, "stop": False}],
        "validation": {"history": [], "best_epoch": None, "best_score": None},
        "optimizer": {k: v for k, v in opt.state_dict().items()},  # int keys, tuples, 0-d arrays
    }


def _as_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {k: _as_numpy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_numpy(v) for v in value]
    return value


def test_a_nested_state_round_trips_with_its_arrays_and_keys(tmp_path: Path) -> None:
    state = _as_numpy(_state(1.0))
    ckpt = SessionCheckpoints(tmp_path, "plan-a")
    ckpt.save(0, state)
    loaded = SessionCheckpoints(tmp_path, "plan-a").load(0)
    np.testing.assert_array_equal(loaded["arrays"]["w"], state["arrays"]["w"])
    assert loaded["history"] == state["history"] and loaded["validation"] == state["validation"]
    assert set(loaded["optimizer"]["state"]) == {0, 1}  # the optimizer's int keys survive
    np.testing.assert_array_equal(loaded["optimizer"]["state"][0]["exp_avg"],
                                  state["optimizer"]["state"][0]["exp_avg"])
    assert loaded["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.999]
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pt"))  # no pickle


def test_resume_starts_from_the_newest_complete_epoch(tmp_path: Path) -> None:
    ckpt = SessionCheckpoints(tmp_path, "plan-a")
    for epoch in range(3):
        ckpt.save(epoch, _as_numpy(_state(float(epoch))))
    assert ckpt.epochs() == [1, 2]  # the newest two are kept
    # a save that died before its metadata was renamed in place does not count
    (tmp_path / "epoch_00003.npz").write_bytes(b"partial")
    (tmp_path / "epoch_00003.json.tmp").write_text("{")
    resumed = SessionCheckpoints(tmp_path, "plan-a")
    assert resumed.latest() == 2
    np.testing.assert_array_equal(resumed.load(2)["arrays"]["w"], np.arange(4.0) * 2)
    resumed.discard_after(1)
    assert resumed.epochs() == [1]


def test_another_plans_directory_is_refused(tmp_path: Path) -> None:
    SessionCheckpoints(tmp_path, "plan-a").save(0, {"w": np.zeros(2)})
    with pytest.raises(ConfigError, match=f"{tmp_path}.*holds another job"):
        SessionCheckpoints(tmp_path, "plan-b")


def test_a_state_that_is_not_plain_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cannot hold a object"):
        SessionCheckpoints(tmp_path, "plan-a").save(0, {"x": object()})


# --- one name for the insecure mode and for early stopping --------------------------------------
def _job(tmp_path: Path, algorithm: str, params: str) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text("guest: bank\nhosts: [partner]\ndatasets: {bank: c, partner: c}\n"
                   f"steps:\n  train: {{algorithm: {algorithm}, params: {params}}}\n")
    return job


@pytest.mark.parametrize(("algorithm", "params", "new"), [
    ("split_nn", "{mode: plain}", "use mode: insecure_plaintext"),
    ("hetero_lr", "{early_stopping: true}", "use early_stopping: auc"),
    ("hetero_lr", "{early_stopping: true, validation_metric: ks}", "use early_stopping: ks"),
    ("split_nn", "{early_stopping: false}", "use early_stopping: null"),
])
def test_old_spellings_in_a_job_still_load_and_warn_with_the_new_key(tmp_path, algorithm, params, new):
    with pytest.warns(DeprecationWarning, match=f"is deprecated; {new}"):
        job = load_job_config(_job(tmp_path, algorithm, params))
    assert job.steps.train.algorithm == algorithm


@pytest.mark.parametrize("algorithm", ["hetero_lr", "split_nn"])
def test_every_algorithm_takes_the_same_names(tmp_path, algorithm):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spellings warn nothing
        load_job_config(_job(tmp_path, algorithm, "{mode: insecure_plaintext, early_stopping: ks}"))
    with pytest.raises(ConfigError, match="early_stopping must be null or one of"):
        load_job_config(_job(tmp_path, algorithm, "{early_stopping: f1}"))
    with pytest.raises(ConfigError, match="mode must be one of"):
        load_job_config(_job(tmp_path, algorithm, "{mode: clear}"))


def test_hetero_lr_stops_the_same_under_the_old_and_the_new_spelling():
    rng = np.random.default_rng(0)
    Xg, Xh = rng.normal(size=(600, 3)), rng.normal(size=(600, 4))
    y = (Xg[:, 0] - Xh[:, 1] + rng.logistic(size=600) > 0).astype(int)
    tr, va = slice(0, 400), slice(400, None)

    def fit(**stopping):
        est = HeteroLogisticRegression(mode="insecure_plaintext", epochs=40, batch_size=64,
                                       learning_rate=0.5, tol=None, patience=2, **stopping)
        simulate({"bank": (lambda ctx: est.fit(ctx, Xg[tr], y[tr], X_val=Xg[va], y_val=y[va]), {}),
                  "partner": (lambda ctx: host_fit(ctx, Xh[tr], X_val=Xh[va], policy_allows_insecure=True), {})},
                 roles={"bank": "guest", "partner": "host"})
        return est

    new = fit(early_stopping="ks")
    with pytest.warns(DeprecationWarning, match="use early_stopping: ks"):
        old = fit(early_stopping=True, validation_metric="ks")
    assert new.n_iter_ < 40 and new.best_epoch_ == int(np.argmax([h["val_ks"] for h in new.history_]))
    assert [h["val_ks"] for h in old.history_] == [h["val_ks"] for h in new.history_]
    np.testing.assert_array_equal(old.coef_, new.coef_)


# --- the epoch loop -----------------------------------------------------------------------------
def test_every_party_walks_the_same_epochs_and_stops_when_its_epoch_says_so():
    """A resumed session runs from the agreed epoch; each epoch has its own context (tags of
    two epochs never mix), is recorded and checkpointed before progress shows it, and the
    loop ends at the epoch that decided to stop."""
    ended: dict[str, list] = {"bank": [], "partner": []}
    events = []

    def guest(ctx):
        def train(ectx, epoch):
            ectx.broadcast("decision", {"stop": epoch == 3})
            return EpochOutcome({"epoch": float(epoch + 1), "loss": 1.0 / (epoch + 1)}, stop=epoch == 3)

        run_epochs(ctx, range(1, 6), 6, train, lambda e, r: ended["bank"].append((e, dict(r))), "test")

    def host(ctx):
        def train(ectx, epoch):
            stop = ectx.recv(ctx.guest, "decision")["stop"]
            return EpochOutcome({"mode": "he"}, stop=stop)

        run_epochs(ctx, range(1, 6), 6, train, lambda e, r: ended["partner"].append((e, dict(r))), "test")

    simulate({"bank": (guest, {}), "partner": (host, {})}, roles={"bank": "guest", "partner": "host"},
             on_progress=events.append)
    for party, runs in ended.items():
        assert [e for e, _ in runs] == [1, 2, 3], party
        assert all(r["seconds"] >= 0 for _, r in runs)
    shown = [(e.party, e.done) for e in events if e.info.get("unit") == "epochs"]
    assert sorted(shown) == [("bank", 2), ("bank", 3), ("bank", 4), ("partner", 2), ("partner", 3), ("partner", 4)]

"""The training session every algorithm shares, tested once: checkpoints (a party's nested
state round-trips exactly, an interrupted save does not count, another plan's directory is
refused), the plan every host checks field by field under its own policy, the resume agreement
on the newest epoch every party holds, and the checks of every session message (plan_ack,
resume, epoch_decision)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.algorithms import fed_linear
from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression, host_fit
from vfl.algorithms.registry import HostSettings
from vfl.algorithms.session import EpochOutcome, SessionCheckpoints, run_epochs
from vfl.config import load_job_config
from vfl.errors import ConfigError, PolicyError, ProtocolError
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


# --- the session's start: plan, the host's own policy, resume agreement, decisions --------------
# (the tiny plaintext algorithm of tests/algorithms/fed_linear.py runs on the skeleton alone)
ROLES = {"bank": "guest", "partner": "host"}


def _linear_data(n: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    Xg, Xh = rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
    return Xg, Xh, (Xg[:, 0] - Xh[:, 1] + rng.logistic(size=n) > 0).astype(float)


def _fit_linear(epochs: int, guest_dir=None, host_dir=None, allow_insecure=True, learning_rate=0.5,
                on_progress=None):
    Xg, Xh, y = _linear_data()
    est = fed_linear.Estimator(epochs=epochs, learning_rate=learning_rate)
    settings = HostSettings(model=None, where="models.fed_linear", allow_insecure=allow_insecure)
    out = simulate({"bank": (lambda ctx: est.fit(ctx, Xg, y, guest_dir), {}),
                    "partner": (lambda ctx: fed_linear.FedLinear().host_fit(ctx, Xh, settings, host_dir), {})},
                   roles=ROLES, on_progress=on_progress)
    return est, out["partner"]


def test_a_host_applies_its_own_policy_and_the_guest_raises_the_same_error():
    with pytest.raises(PolicyError, match="partner: refused fed_linear plan from 'bank': insecure_plaintext "
                                          "mode is not allowed by this host's policy"):
        _fit_linear(2, allow_insecure=False)
    Xg, _, y = _linear_data()
    acks = []

    def guest(ctx):
        ctx.broadcast("plan", fed_linear.Plan.make(mode="insecure_plaintext", epochs=2, learning_rate=0.5,
                                                   n_rows=len(y), n_val_rows=0, early_stopping=False).to_wire())
        acks.append(ctx.recv("partner", "plan_ack"))

    settings = HostSettings(model=None, where="models.fed_linear", allow_insecure=False)
    with pytest.raises(PolicyError):
        simulate({"bank": (guest, {}), "partner": (lambda ctx: fed_linear.FedLinear().host_fit(
            ctx, _linear_data()[1], settings, None), {})}, roles=ROLES)
    assert acks[0]["ok"] is False and acks[0]["error"] == "PolicyError"
    assert "residuals in the clear" in acks[0]["reason"]  # the refusal says what would cross


@pytest.mark.parametrize(("change", "field"), [
    ({"epochs": 0}, "epochs"),
    ({"n_rows": True}, "n_rows"),  # a bool is not a row count
    ({"mode": "plain"}, "mode"),  # old spellings are for configs, never for the wire
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"surprise": 1}, "surprise"),
])
def test_every_field_of_a_received_plan_is_checked_and_named(change, field):
    good = fed_linear.Plan.make(mode="insecure_plaintext", epochs=2, learning_rate=0.5, n_rows=80,
                                n_val_rows=0, early_stopping=False).to_wire()
    assert fed_linear.Plan.from_wire(good).to_wire() == good
    with pytest.raises(ProtocolError, match=f"fed_linear plan field '{field}'"):
        fed_linear.Plan.from_wire({**good, **change})
    missing = {k: v for k, v in good.items() if k != "n_val_rows"}
    with pytest.raises(ProtocolError, match="field 'n_val_rows': Field required"):
        fed_linear.Plan.from_wire(missing)
    with pytest.raises(ConfigError, match="fed_linear plan: field 'epochs'"):  # the guest's own settings
        fed_linear.Plan.make(**{**good, "epochs": -3})


def test_the_fingerprint_ignores_only_what_a_resumed_run_may_change():
    base = dict(mode="insecure_plaintext", epochs=2, learning_rate=0.5, n_rows=80, n_val_rows=0,
                early_stopping=False)
    plan = fed_linear.Plan.make(**base)
    assert fed_linear.Plan.make(**{**base, "epochs": 9}).fingerprint() == plan.fingerprint()
    for change in ({"learning_rate": 0.25}, {"n_rows": 81}, {"early_stopping": True}):
        assert fed_linear.Plan.make(**{**base, **change}).fingerprint() != plan.fingerprint(), change


def test_parties_with_different_checkpoints_resume_from_the_newest_one_all_hold(tmp_path, caplog):
    """The host lost its newest epoch: both resume after the one both have, the guest drops its
    newer one, and the model is the uninterrupted run's."""
    straight, straight_host = _fit_linear(6)
    g, h = tmp_path / "guest", tmp_path / "host"
    _fit_linear(4, g, h)  # an "interrupted" run: both hold epochs 2 and 3 (0-based)
    assert sorted(p.name for p in h.glob("*.json")) == ["epoch_00002.json", "epoch_00003.json"]
    for f in h.glob("epoch_00003.*"):
        f.unlink()
    events = []
    with caplog.at_level(logging.INFO, logger="vfl.party"):
        est, host = _fit_linear(6, g, h, on_progress=events.append)
    assert "resuming fed_linear after epoch 3 from" in caplog.text
    ran = sorted((e.party, e.done) for e in events if e.info.get("unit") == "epochs")
    assert ran == [("bank", 4), ("bank", 5), ("bank", 6), ("partner", 4), ("partner", 5), ("partner", 6)]
    assert len(est.history_) == 6  # the resumed records and the new ones
    np.testing.assert_array_equal(est.part_.coef, straight.part_.coef)
    np.testing.assert_array_equal(host.coef, straight_host.coef)

    # a guest with no checkpoints: nothing is common, every party starts over and drops its own
    for f in g.glob("epoch_*"):
        f.unlink()
    events.clear()
    _fit_linear(6, g, h, on_progress=events.append)
    assert min(e.done for e in events if e.info.get("unit") == "epochs") == 1
    assert sorted(p.name for p in h.glob("*.json")) == ["epoch_00004.json", "epoch_00005.json"]


def test_a_finished_run_is_not_trained_again_but_a_longer_plan_continues_it(tmp_path):
    g, h = tmp_path / "guest", tmp_path / "host"
    first, _ = _fit_linear(3, g, h)
    events = []
    again, _ = _fit_linear(3, g, h, on_progress=events.append)
    assert not [e for e in events if e.info.get("unit") == "epochs"]  # nothing left to run
    np.testing.assert_array_equal(again.part_.coef, first.part_.coef)
    longer, _ = _fit_linear(5, g, h, on_progress=events.append)
    assert sorted(e.done for e in events if e.party == "bank" and e.info.get("unit") == "epochs") == [4, 5]


def test_a_host_whose_checkpoints_belong_to_another_plan_refuses_it(tmp_path):
    _fit_linear(2, tmp_path / "guest", tmp_path / "host", learning_rate=0.5)
    with pytest.raises(ConfigError, match=r"refused fed_linear plan from 'bank': checkpoint directory .*host "
                                          "holds another job"):
        _fit_linear(2, None, tmp_path / "host", learning_rate=0.25)


def _plan_wire(n_rows: int, epochs: int = 2) -> dict:
    return fed_linear.Plan.make(mode="insecure_plaintext", epochs=epochs, learning_rate=0.5, n_rows=n_rows,
                                n_val_rows=0, early_stopping=False).to_wire()


def _linear_host(ctx, X, checkpoint_dir=None):
    settings = HostSettings(model=None, where="models.fed_linear", allow_insecure=True)
    return fed_linear.FedLinear().host_fit(ctx, X, settings, checkpoint_dir)


@pytest.mark.parametrize(("resume", "match"), [
    ({"epoch": 0, "end": 2}, "'resume' from 'bank' must be .* one of this host's checkpoints \\[\\]"),
    ({"epoch": -1, "end": 3}, "end <= 2"),
    ({"epoch": -1}, "must be \\{epoch, end\\}"),
    ({"epoch": False, "end": 2}, "must be \\{epoch, end\\}"),
])
def test_a_host_refuses_a_resume_it_cannot_honour(resume, match):
    Xh = _linear_data()[1]

    def guest(ctx):
        ctx.send("partner", "plan", _plan_wire(len(Xh)))
        assert ctx.recv("partner", "plan_ack")["ok"]
        ctx.send("partner", "resume", resume)

    with pytest.raises(ProtocolError, match=match):
        simulate({"bank": (guest, {}), "partner": (_linear_host, {"X": Xh})}, roles=ROLES)


@pytest.mark.parametrize("decision", [{"best": 1, "stop": False}, {"stop": True}, {"best": False, "stop": False, "x": 1}])
def test_a_host_refuses_a_malformed_epoch_decision(decision):
    Xh = _linear_data()[1]

    def guest(ctx):
        ctx.send("partner", "plan", _plan_wire(len(Xh)))
        ctx.recv("partner", "plan_ack")
        ctx.send("partner", "resume", {"epoch": -1, "end": 2})
        ectx = ctx.child("epoch", 0)
        ectx.recv("partner", "contribution")
        ectx.send("partner", "residual", np.zeros(len(Xh)))
        ectx.send("partner", "epoch_decision", decision)

    with pytest.raises(ProtocolError, match="malformed 'epoch_decision' from 'bank' at step 'epoch/0'"):
        simulate({"bank": (guest, {}), "partner": (_linear_host, {"X": Xh})}, roles=ROLES)


@pytest.mark.parametrize(("ack", "match"), [
    ({"ok": True, "epochs": [0], "reply": {}, "extra": 1}, "must be \\{ok, epochs: \\[int >= 0\\], reply\\}"),
    ({"ok": True, "epochs": [-1], "reply": {}}, "must be \\{ok, epochs"),
    ({"ok": True, "epochs": [], "reply": {"n_features": 3}}, "reply field 'n_features'"),
    ({"ok": "yes"}, "malformed 'plan_ack' from host 'partner'"),
    ({"ok": False, "reason": "no", "error": "SystemExit"}, "host 'partner' refused the fed_linear plan: no"),
])
def test_the_guest_checks_every_hosts_answer(ack, match):
    Xg, _, y = _linear_data()

    def host(ctx):
        ctx.recv("bank", "plan")
        ctx.send("bank", "plan_ack", ack)

    with pytest.raises(ProtocolError, match=match):  # an unknown error class is a ProtocolError
        simulate({"bank": (lambda ctx: fed_linear.Estimator(2, 0.5).fit(ctx, Xg, y), {}), "partner": (host, {})},
                 roles=ROLES)

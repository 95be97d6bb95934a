"""HE logistic regression: federated runs against the centralized Taylor reference, hyper-
parameters, policy, validation/early stopping, warm start and serving parts."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from tests.algorithms.hetero_lr.lr_centralized import TaylorLogisticRegression
from vfl.algorithms.hetero_lr.estimator import (
    INSECURE,
    HeteroLogisticRegression,
    TrainingPlan,
    host_fit,
    host_predict,
)
from vfl.algorithms.hetero_lr.model import LRGuestPart, LRHostPart
from vfl.algorithms.optim import epoch_batches, smallest_batch
from vfl.errors import ConfigError, DataError, PolicyError, ProtocolError
from vfl.evaluation.binary import fast_auc_ks
from vfl.parties import simulate

KEY_BITS = 1024  # the library default is 2048; small keys keep the suite fast


def make_data(n: int, widths: list[int], seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Feature blocks (guest first) and 0/1 labels from a noisy logistic model."""
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(n, w)) for w in widths]
    z = sum(b @ rng.normal(size=b.shape[1]) for b in blocks) + 0.3
    y = (z + rng.logistic(size=n) > 0).astype(int)
    return blocks, y


def run_job(est, Xg, y, hosts, *, fit_kwargs=None, host_kwargs=None, predict=None, on_progress=None):
    """Simulate guest 'bank' and the given hosts; returns (guest's predictions, host parts)."""
    fit_kwargs, host_kwargs = fit_kwargs or {}, host_kwargs or {}
    predict = predict or {"bank": Xg, **hosts}

    def guest(ctx):
        est.fit(ctx, Xg, y, **fit_kwargs)
        return est.predict_proba(ctx, predict["bank"])[:, 1]

    def host(ctx, X, X_pred):
        part = host_fit(ctx, X, **host_kwargs.get(ctx.name, {}))
        host_predict(ctx, X_pred, part)
        return part

    parties = {"bank": (guest, {}), **{h: (host, {"X": X, "X_pred": predict[h]}) for h, X in hosts.items()}}
    roles = {"bank": "guest", **dict.fromkeys(hosts, "host")}
    out = simulate(parties, roles, on_progress=on_progress)
    return out["bank"], {h: out[h] for h in hosts}


def test_he_two_hosts_weighted_adam_l1_matches_centralized():
    (Xg, Xa, Xb), y = make_data(240, [3, 2, 4], seed=1)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, len(y))
    params = dict(epochs=3, batch_size=64, learning_rate=0.2, lr_schedule="inverse_time", decay=0.5,
                  optimizer="adam", penalty="l1", alpha=0.01, class_weight="balanced", random_state=5)
    est = HeteroLogisticRegression(key_bits=KEY_BITS, **params)
    proba, parts = run_job(est, Xg, y, {"a": Xa, "b": Xb}, fit_kwargs={"sample_weight": sw})

    ref = TaylorLogisticRegression(**params).fit(np.hstack([Xg, Xa, Xb]), y, sample_weight=sw)
    federated = np.r_[est.coef_, parts["a"].coef_, parts["b"].coef_]
    np.testing.assert_allclose(federated, ref.coef_, atol=1e-7)
    assert est.intercept_ == pytest.approx(ref.intercept_, abs=1e-7)
    np.testing.assert_allclose(proba, ref.predict_proba(np.hstack([Xg, Xa, Xb]))[:, 1], atol=1e-7)
    assert est.n_iter_ == ref.n_iter_ == 3
    assert parts["a"].coef_.shape == (2,) and parts["b"].coef_.shape == (4,) and est.coef_.shape == (3,)


def test_every_party_reports_progress_per_epoch(caplog):
    (Xg, Xa, Xb), y = make_data(90, [2, 2, 1], seed=13)
    est = HeteroLogisticRegression(epochs=3, batch_size=45, key_bits=KEY_BITS, tol=None)
    events = []
    with caplog.at_level(logging.INFO, logger="vfl.party"):
        run_job(est, Xg, y, {"a": Xa, "b": Xb}, on_progress=events.append)
    events = [e for e in events if e.info["unit"] == "epochs"]  # batches: the next test
    for party in ("bank", "a", "b"):
        mine = [e for e in events if e.party == party]
        assert [(e.done, e.total) for e in mine] == [(1, 3), (2, 3), (3, 3)], party
        assert all(e.info["mode"] == "he" and e.info["seconds"] > 0 for e in mine)
    assert [e.info["epoch"] for e in events if e.party == "bank"] == [1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("[a " in m and "hetero LR host [he] epoch" in m for m in lines) == 3
    assert sum("[bank " in m and "hetero LR [he] epoch" in m for m in lines) == 3


def test_every_party_reports_each_batch_within_an_epoch():
    (Xg, Xa, Xb), y = make_data(100, [2, 2, 1], seed=14)
    est = HeteroLogisticRegression(epochs=2, batch_size=25, key_bits=KEY_BITS, tol=None)
    events = []
    run_job(est, Xg, y, {"a": Xa, "b": Xb}, on_progress=events.append)
    for party in ("bank", "a", "b"):
        batches = [(e.info["epoch"], e.info["epochs"], e.done, e.total) for e in events
                   if e.party == party and e.info["unit"] == "batches"]
        assert batches == [(epoch, 2, b, 4) for epoch in (1, 2) for b in range(5)], party


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("penalty", [None, "l1", "l2"])
@pytest.mark.parametrize("schedule", ["constant", "inverse_sqrt"])
def test_plaintext_mode_equals_centralized_for_each_optimizer(optimizer, penalty, schedule):
    (Xg, Xh), y = make_data(150, [2, 3], seed=3)
    params = dict(epochs=4, batch_size=32, learning_rate=0.3, lr_schedule=schedule,
                  optimizer=optimizer, penalty=penalty, alpha=0.05, random_state=9, tol=None)
    est = HeteroLogisticRegression(mode=INSECURE, **params)
    _, parts = run_job(est, Xg, y, {"p": Xh}, host_kwargs={"p": {"policy_allows_insecure": True}})
    ref = TaylorLogisticRegression(**params).fit(np.hstack([Xg, Xh]), y)
    np.testing.assert_allclose(np.r_[est.coef_, parts["p"].coef_, est.intercept_],
                               np.r_[ref.coef_, ref.intercept_], atol=1e-12)


def test_insecure_plaintext_refused_unless_host_policy_allows():
    (Xg, Xh), y = make_data(50, [2, 2])
    est = HeteroLogisticRegression(mode=INSECURE, epochs=1)
    with pytest.raises(PolicyError, match="insecure_plaintext mode is not allowed"):
        run_job(est, Xg, y, {"p": Xh})


def test_insecure_plaintext_is_labelled_everywhere(caplog, tmp_path):
    (Xg, Xh), y = make_data(50, [2, 2])
    est = HeteroLogisticRegression(mode=INSECURE, epochs=2, batch_size=16)
    with caplog.at_level(logging.WARNING, logger="vfl.party"):
        _, parts = run_job(est, Xg, y, {"p": Xh}, host_kwargs={"p": {"policy_allows_insecure": True}})
    banners = [r.getMessage() for r in caplog.records if "INSECURE PLAINTEXT MODE" in r.getMessage()]
    assert any("[bank " in m for m in banners) and any("[p " in m for m in banners)
    assert all(rec["mode"] == INSECURE for rec in est.history_)
    assert est.part_.mode == INSECURE and parts["p"].mode == INSECURE
    est.part_.save(tmp_path)
    parts["p"].save(tmp_path)
    assert LRGuestPart.load(tmp_path).mode == INSECURE and LRHostPart.load(tmp_path).mode == INSECURE


def test_host_rejects_malformed_plan_and_tells_the_guest():
    (Xg, Xh), y = make_data(40, [2, 2])
    est = HeteroLogisticRegression(epochs=1, key_bits=KEY_BITS)
    good = est._plan(40, 0, 3, False, False).to_wire()

    def guest(ctx):
        ctx.send("p", "plan", {**good, "key_bits": 512})
        return ctx.recv("p", "plan_ack")

    acks = []
    with pytest.raises(ProtocolError, match="key_bits"):
        simulate({"bank": (lambda ctx: acks.append(guest(ctx)), {}), "p": (host_fit, {"X": Xh})},
                 roles={"bank": "guest", "p": "host"})
    assert acks and acks[0]["ok"] is False and "key_bits" in acks[0]["reason"]
    with pytest.raises(ProtocolError, match="optimizer"):
        TrainingPlan.from_wire({**good, "optimizer": {**good["optimizer"], "name": "lbfgs"}})
    with pytest.raises(ProtocolError, match="n_rows"):
        TrainingPlan.from_wire({**good, "n_rows": True})


def test_batches_fold_a_short_tail_and_cover_every_row_once():
    for n, b in [(100, 30), (100, 40), (90, 45), (10, 64), (1, 1), (7, 2), (24000, 1024)]:
        batches = epoch_batches(n, b, 0, 1)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(n))
        assert min(map(len, batches)) == smallest_batch(n, b)
    assert [len(x) for x in epoch_batches(100, 30, 0, 0)] == [30, 30, 40]  # a tail of 10 joins
    assert [len(x) for x in epoch_batches(100, 40, 0, 0)] == [40, 40, 20]


def test_he_refuses_batches_a_party_could_solve_for_the_other_sides_secrets():
    (Xg, Xh), y = make_data(100, [2, 6])
    est = HeteroLogisticRegression(epochs=1, batch_size=8, key_bits=KEY_BITS)  # tail: 4 rows, kept
    with pytest.raises(ConfigError, match="mini-batches of 4 rows, but host 'p' has 6 features"):
        run_job(est, Xg, y, {"p": Xh})  # the guest protects its labels
    with pytest.raises(PolicyError, match="mini-batches of 4 rows would let the guest"):
        run_job(est, Xh, y, {"p": Xg})  # the host protects its partial scores (guest: 7 weights)
    est.batch_size = 9  # a tail of 1 row joins the last batch: no batch under 9 rows
    run_job(est, Xh, y, {"p": Xg})


def test_host_refuses_a_plan_for_other_rows():
    (Xg, Xh), y = make_data(40, [2, 2])
    est = HeteroLogisticRegression(epochs=1, key_bits=KEY_BITS)
    with pytest.raises(DataError, match="39 aligned rows"):
        run_job(est, Xg, y, {"p": Xh[:39]})


@pytest.mark.parametrize("metric", ["auc", "ks"])
def test_early_stopping_restores_best_epoch_on_every_party(metric):
    (Xg, Xh), y = make_data(600, [3, 3], seed=11)
    tr, va = slice(0, 200), slice(200, 600)
    est = HeteroLogisticRegression(mode=INSECURE, epochs=40, batch_size=20, learning_rate=2.0, tol=None,
                                   early_stopping=metric, patience=2, random_state=1)
    proba, parts = run_job(
        est, Xg[tr], y[tr], {"p": Xh[tr]},
        fit_kwargs={"X_val": Xg[va], "y_val": y[va]},
        host_kwargs={"p": {"policy_allows_insecure": True, "X_val": Xh[va]}},
        predict={"bank": Xg[va], "p": Xh[va]},
    )
    scores = [rec[f"val_{metric}"] for rec in est.history_]
    assert est.n_iter_ < 40, "validation metric never stalled; the test data should make it stall"
    assert est.best_epoch_ == int(np.argmax(scores))
    assert est.n_iter_ == est.best_epoch_ + 1 + 2
    auc, ks = fast_auc_ks(y[va], proba)  # the restored model, guest and host parts together
    assert (auc if metric == "auc" else ks) == pytest.approx(scores[est.best_epoch_], abs=1e-12)
    assert all({"val_auc", "val_ks", "val_loss", "seconds"} <= set(rec) for rec in est.history_)


def test_tolerance_stops_like_the_centralized_reference():
    (Xg, Xh), y = make_data(200, [2, 3], seed=4)
    params = dict(epochs=50, batch_size=50, learning_rate=0.1, tol=5e-3, random_state=2)
    est = HeteroLogisticRegression(mode=INSECURE, **params)
    _, parts = run_job(est, Xg, y, {"p": Xh}, host_kwargs={"p": {"policy_allows_insecure": True}})
    ref = TaylorLogisticRegression(**params).fit(np.hstack([Xg, Xh]), y)
    assert 1 < est.n_iter_ == ref.n_iter_ < 50
    assert est.history_[-1]["converged"] and est.history_[-1]["stop"]
    np.testing.assert_allclose(np.r_[est.coef_, parts["p"].coef_], ref.coef_, atol=1e-12)


def test_warm_start_continues_from_both_parties_fitted_weights():
    (Xg, Xh), y = make_data(120, [2, 3], seed=6)
    est = HeteroLogisticRegression(epochs=2, batch_size=40, key_bits=KEY_BITS)
    _, parts = run_job(est, Xg, y, {"p": Xh})
    first_g, first_h = np.r_[est.coef_, est.intercept_], parts["p"].coef_
    est.warm_start, est.learning_rate, est.epochs = True, 1e-9, 1
    _, parts2 = run_job(est, Xg, y, {"p": Xh}, host_kwargs={"p": {"init": parts["p"]}})
    np.testing.assert_allclose(np.r_[est.coef_, est.intercept_], first_g, atol=1e-8)
    np.testing.assert_allclose(parts2["p"].coef_, first_h, atol=1e-8)
    assert np.any(first_h != 0)
    with pytest.raises(ConfigError, match="warm_start"):
        run_job(est, Xg, y, {"p": Xh})  # the host has no fitted part to start from


def test_parts_save_load_and_predict(tmp_path):
    (Xg, Xh), y = make_data(100, [2, 3], seed=8)
    Xg_df = pd.DataFrame(Xg, columns=["income", "age"])
    est = HeteroLogisticRegression(epochs=2, batch_size=50, key_bits=KEY_BITS)
    proba, parts = run_job(est, Xg_df, y, {"p": pd.DataFrame(Xh, columns=["a", "b", "c"])})
    est.part_.save(tmp_path / "g")
    parts["p"].save(tmp_path / "h")
    guest, host = LRGuestPart.load(tmp_path / "g"), LRHostPart.load(tmp_path / "h")
    assert guest.feature_names == ["income", "age"] and host.feature_names == ["a", "b", "c"]
    np.testing.assert_allclose(guest.predict_proba(Xg, [host.contribution(Xh)]), proba, atol=1e-15)
    assert est.classes_.tolist() == [0, 1]


def test_checkpoint_of_another_job_is_refused(tmp_path):
    (Xg, Xh), y = make_data(60, [2, 2])
    est = HeteroLogisticRegression(mode=INSECURE, epochs=1, batch_size=30, checkpoint_dir=tmp_path / "g")
    hk = {"p": {"policy_allows_insecure": True, "checkpoint_dir": tmp_path / "h"}}
    run_job(est, Xg, y, {"p": Xh}, host_kwargs=hk)
    assert (tmp_path / "g" / "epoch_00000.json").exists() and (tmp_path / "h" / "epoch_00000.json").exists()
    est.learning_rate = 0.01
    with pytest.raises(ConfigError, match="holds another job"):
        run_job(est, Xg, y, {"p": Xh}, host_kwargs=hk)


def test_resume_uses_the_newest_epoch_every_party_has(tmp_path):
    (Xg, Xh), y = make_data(90, [2, 2], seed=12)
    hk = {"p": {"policy_allows_insecure": True, "checkpoint_dir": tmp_path / "h"}}

    def fit(epochs, host_kwargs=hk):
        est = HeteroLogisticRegression(mode=INSECURE, epochs=epochs, batch_size=30, tol=None,
                                       optimizer="adam", checkpoint_dir=tmp_path / "g")
        _, parts = run_job(est, Xg, y, {"p": Xh}, host_kwargs=host_kwargs)
        return np.r_[est.coef_, est.intercept_, parts["p"].coef_], est

    full, _ = fit(4, {"p": {"policy_allows_insecure": True}})
    for d in ("g", "h"):
        for f in (tmp_path / d).glob("*"):
            f.unlink()
    fit(2)  # then continue the same job to 4 epochs: same model as 4 epochs at once
    extended, est = fit(4)
    np.testing.assert_array_equal(extended, full)
    assert [r["epoch"] for r in est.history_] == [1, 2, 3, 4]
    for f in (tmp_path / "h").glob("*"):
        f.unlink()  # the host lost its checkpoints: both parties start over
    again, est = fit(4)
    np.testing.assert_array_equal(again, full)
    assert sorted(f.name for f in (tmp_path / "g").glob("*.json")) == ["epoch_00002.json", "epoch_00003.json"]


# --- scikit-learn estimator API ----------------------------------------------------------------
def test_the_estimator_follows_the_scikit_learn_api():
    from sklearn.base import clone

    est = HeteroLogisticRegression(mode=INSECURE, epochs=2, batch_size=30, tol=None,
                                   class_weight={0: 1.0, 1: 2.0})
    params = est.get_params()
    assert params["epochs"] == 2 and params["mode"] == INSECURE and params["key_bits"] == 2048
    assert set(params) == {"epochs", "batch_size", "learning_rate", "lr_schedule", "decay", "optimizer",
                           "penalty", "alpha", "class_weight", "tol", "early_stopping",
                           "validation_metric", "patience", "warm_start", "key_bits", "mode",
                           "random_state", "checkpoint_dir"}
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert twin.class_weight is not est.class_weight  # clone copies, the original stays untouched
    assert twin.set_params(epochs=5, learning_rate=0.3) is twin
    assert (twin.epochs, twin.learning_rate, est.epochs) == (5, 0.3, 2)
    with pytest.raises(ValueError, match="Invalid parameter 'epoch'"):
        twin.set_params(epoch=3)
    with pytest.raises(TypeError):
        HeteroLogisticRegression(5)  # hyper-parameters are keyword-only

    (Xg, Xh), y = make_data(90, [2, 2], seed=4)
    allow = {"partner": {"policy_allows_insecure": True}}
    run_job(est, Xg, y, {"partner": Xh}, host_kwargs=allow)
    fresh = clone(est)  # a fitted estimator clones to an unfitted one with the same settings
    assert hasattr(est, "coef_") and not hasattr(fresh, "coef_") and fresh.get_params() == params
    run_job(fresh, Xg, y, {"partner": Xh}, host_kwargs=allow)
    np.testing.assert_allclose(fresh.coef_, est.coef_)

"""Acceptance on the raw UCI credit card data split as bank + partner, with 5% missing values:
per-party pipelines + federated LR reach a centralized sklearn pipeline's AUC, the saved
pipelines replay exactly at scoring, and federated WOE/IV equal the centralized numbers."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression, host_fit, host_predict
from vfl.algorithms.hetero_lr.model import LRGuestPart, LRHostPart
from vfl.demo_data import (
    LABEL,
    UCI_GUEST_COLUMNS,
    UCI_GUEST_PREPROCESSING,
    UCI_HOST_COLUMNS,
    UCI_HOST_PREPROCESSING,
    split_uci,
)
from vfl.parties import simulate
from vfl.preprocessing import woe
from vfl.preprocessing.preprocessor import PartyPreprocessor

ROLES = {"bank": "guest", "partner": "host"}
# Converged Taylor-loss LR (epochs/rate chosen so the last epochs barely move the weights).
LR_PARAMS = {"epochs": 40, "batch_size": 1024, "learning_rate": 0.02, "optimizer": "adam",
             "lr_schedule": "inverse_sqrt", "tol": None, "key_bits": 1024}


@pytest.fixture(scope="module")
def uci(shared_data):
    guest, host = split_uci(shared_data / "UCI_Credit_Card.csv", missing_rate=0.05, seed=0)
    order = np.random.default_rng(0).permutation(len(guest))
    train, test = np.sort(order[:24_000]), np.sort(order[24_000:])
    return guest, host, train, test


def test_split_matches_the_shared_hetero_files_and_injects_missing_values(uci, shared_data):
    guest, host, _, _ = uci
    assert list(guest.columns) == ["id", LABEL, *UCI_GUEST_COLUMNS]
    assert list(host.columns) == ["id", *UCI_HOST_COLUMNS]
    rate = pd.concat([guest[UCI_GUEST_COLUMNS], host[UCI_HOST_COLUMNS]], axis=1).isna().mean()
    assert rate.between(0.04, 0.06).all()
    assert guest[["id", LABEL]].notna().all().all()
    # same customers, label and columns (in order) as the shared z-scored files
    for side, raw, cols in [("guest", guest, UCI_GUEST_COLUMNS), ("host", host, UCI_HOST_COLUMNS)]:
        shared = pd.read_csv(shared_data / f"default_credit_hetero_{side}.csv")
        both = shared.merge(raw, on="id", validate="one_to_one")
        assert len(both) == len(raw)
        if side == "guest":
            assert (both["y_x"] == both["y_y"]).all()
        for i, col in enumerate(cols):
            assert both[f"x{i}"].corr(both[col]) > 0.999, col


def _train_and_save(ctx, raw, rows, test_rows, directory, config, y=None):
    """One party: fit its pipeline on its own training rows, train its LR part, save both."""
    prep = PartyPreprocessor(config=config).fit(raw.iloc[rows])
    X, X_test = prep.transform(raw.iloc[rows]), prep.transform(raw.iloc[test_rows])
    if ctx.role == "guest":
        est = HeteroLogisticRegression(mode="insecure_plaintext", **LR_PARAMS).fit(ctx, X, y)
        scores, part = est.predict_proba(ctx, X_test)[:, 1], est.part_
    else:
        part = host_fit(ctx, X, policy_allows_insecure=True)
        host_predict(ctx, X_test, part)
        scores = None
    prep.save(directory)
    part.save(directory)
    return scores, X_test


def test_federated_lr_with_per_party_pipelines_reaches_centralized_auc(uci, tmp_path, caplog):
    guest, host, train, test = uci
    y = guest[LABEL].to_numpy()
    with caplog.at_level(logging.ERROR):
        out = simulate({
            "bank": (_train_and_save, {"raw": guest, "rows": train, "test_rows": test, "y": y[train],
                                       "directory": tmp_path / "bank", "config": UCI_GUEST_PREPROCESSING}),
            "partner": (_train_and_save, {"raw": host, "rows": train, "test_rows": test,
                                          "directory": tmp_path / "partner",
                                          "config": UCI_HOST_PREPROCESSING}),
        }, roles=ROLES)
    fed_scores, Xg_test = out["bank"]
    _, Xh_test = out["partner"]
    fed_auc = roc_auc_score(y[test], fed_scores)

    # centralized: the same transformers on the joined raw table, then scikit-learn's LR
    joined = pd.concat([guest.drop(columns=["id"]), host.drop(columns=["id"])], axis=1)
    central_cfg = {
        "guest_numeric": {**UCI_GUEST_PREPROCESSING["numeric"], "kind": "numeric"},
        "host_numeric": {**UCI_HOST_PREPROCESSING["numeric"], "kind": "numeric"},
        "host_categorical": {**UCI_HOST_PREPROCESSING["categorical"], "kind": "categorical"},
    }
    central = Pipeline([("prep", PartyPreprocessor(config=central_cfg)), ("lr", LogisticRegression(max_iter=2000))])
    central.fit(joined.iloc[train], y[train])
    central_auc = roc_auc_score(y[test], central.predict_proba(joined.iloc[test])[:, 1])
    # per-party features are exactly the centralized pipeline's features, column by column
    central_X = central.named_steps["prep"].transform(joined.iloc[test]).to_numpy()
    assert np.array_equal(central_X, np.hstack([Xg_test.to_numpy(), Xh_test.to_numpy()]))

    print(f"UCI test AUC: federated {fed_auc:.4f}, centralized sklearn {central_auc:.4f}")
    assert central_auc > 0.70
    assert abs(fed_auc - central_auc) <= 0.01, (fed_auc, central_auc)

    # scoring later: each party reloads its own pipeline + model part and replays it on raw rows
    g_prep, h_prep = PartyPreprocessor.load(tmp_path / "bank"), PartyPreprocessor.load(tmp_path / "partner")
    Xg_replay, Xh_replay = g_prep.transform(guest.iloc[test]), h_prep.transform(host.iloc[test])
    assert Xg_replay.to_numpy().tobytes() == Xg_test.to_numpy().tobytes()
    assert Xh_replay.to_numpy().tobytes() == Xh_test.to_numpy().tobytes()
    contribution = LRHostPart.load(tmp_path / "partner").contribution(Xh_replay.to_numpy())
    replayed = LRGuestPart.load(tmp_path / "bank").predict_proba(Xg_replay.to_numpy(), [contribution])
    np.testing.assert_allclose(replayed, fed_scores, rtol=0, atol=1e-12)


def test_he_training_matches_the_plaintext_run_on_uci_rows(uci):
    """The acceptance above trains in insecure_plaintext mode for speed; this shows HE gives
    the same model on this data (1024-bit keys, one epoch on 4,000 rows)."""
    guest, host, train, _ = uci
    rows = train[:4000]
    g_prep = PartyPreprocessor(config=UCI_GUEST_PREPROCESSING).fit(guest.iloc[rows])
    h_prep = PartyPreprocessor(config=UCI_HOST_PREPROCESSING).fit(host.iloc[rows])
    Xg, Xh, y = g_prep.transform(guest.iloc[rows]), h_prep.transform(host.iloc[rows]), guest[LABEL].to_numpy()[rows]
    params = {**LR_PARAMS, "epochs": 1, "learning_rate": 0.05}
    weights = {}
    for mode in ("he", "insecure_plaintext"):
        out = simulate({
            "bank": (lambda ctx, m: HeteroLogisticRegression(mode=m, **params).fit(ctx, Xg, y),
                     {"m": mode}),
            "partner": (lambda ctx: host_fit(ctx, Xh, policy_allows_insecure=True), {}),
        }, roles=ROLES)
        weights[mode] = np.r_[out["bank"].coef_, out["bank"].intercept_, out["partner"].coef_]
    assert np.any(weights["he"] != 0)
    np.testing.assert_allclose(weights["he"], weights["insecure_plaintext"], rtol=0, atol=1e-6)


def test_federated_woe_iv_of_host_columns_equal_centralized_exactly(uci):
    guest, host, _, _ = uci
    X, y = host[UCI_HOST_COLUMNS], guest[LABEL].to_numpy()
    out = simulate({"bank": (woe.guest, {"y": y, "key_bits": 1024, "iv_decimals": None}),
                    "partner": (woe.host, {"X": X, "bins": 10})}, roles=ROLES)
    fed, central = out["bank"]["partner"], woe.centralized(X, y, bins=10)
    assert fed.table["column"].map(out["partner"].columns).tolist() == central.table["column"].tolist()
    for col in ["count", "events", "non_events", "woe", "iv"]:
        assert np.array_equal(fed.table[col].to_numpy(), central.table[col].to_numpy()), col
    assert np.array_equal(out["partner"].iv.to_numpy(), central.iv.to_numpy())
    # the repayment status is by far the most informative host column (known for this data)
    assert out["partner"].iv.idxmax() == "PAY_0" and out["partner"].iv["PAY_0"] > 0.5
    assert "PAY_0" in out["partner"].select(0.1) and "SEX" not in out["partner"].select(0.1)

"""The estimator's options, simulated with one host: early stopping keeps the trees up to the
best one on every party, class weights, row and feature sampling and missing values all train
a model whose federated scores equal its trees evaluated centrally; scikit-learn's clone and
the parameter checks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from tests.algorithms.secureboost.central import central_part, joined
from vfl.algorithms.secureboost.estimator import SecureBoostClassifier, host_fit, host_predict
from vfl.errors import ConfigError
from vfl.parties import simulate

N = 400


def make_data(missing: float = 0.0):
    rng = np.random.default_rng(9)
    Xg, Xh = rng.normal(size=(N, 3)), rng.normal(size=(N, 4))
    y = (Xg[:, 0] + Xh[:, 1] - Xh[:, 2] + 0.7 * rng.logistic(size=N) > 0.8).astype(int)
    for X in (Xg, Xh):
        X[rng.random(X.shape) < missing] = np.nan
    return Xg, Xh, y


def train(est: SecureBoostClassifier, Xg, Xh, y, val: slice | None = None):
    fit_rows = slice(0, 300)

    def bank(ctx):
        kw = {} if val is None else {"X_val": Xg[val], "y_val": y[val]}
        est.fit(ctx, Xg[fit_rows], y[fit_rows], **kw)
        return est.predict_proba(ctx, Xg)[:, 1]

    def partner(ctx):
        part = host_fit(ctx, Xh[fit_rows], X_val=None if val is None else Xh[val])
        host_predict(ctx, Xh, part)
        return part

    out = simulate({"bank": (bank, {}), "partner": (partner, {})}, roles={"bank": "guest", "partner": "host"})
    central = central_part(est.part_, {"partner": out["partner"]}).predict_proba(joined([Xg, Xh]), [])
    np.testing.assert_allclose(out["bank"], central, rtol=0, atol=1e-12)
    return out["partner"], out["bank"]


def test_early_stopping_keeps_the_best_trees_on_every_party():
    Xg, Xh, y = make_data()
    est = SecureBoostClassifier(n_estimators=12, max_depth=3, learning_rate=1.0, key_bits=1024,
                                early_stopping="auc", patience=2)
    host, _ = train(est, Xg, Xh, y, val=slice(300, N))
    assert len(est.history_) < 12 and est.history_[-1]["stop"], "expected an early stop"
    assert est.n_trees_ == est.best_iteration_ + 1 == len(est.part_.roots)
    assert all("val_auc" in h for h in est.history_)
    assert host.tree.max() < est.n_trees_  # the host dropped the columns of the later trees
    best = max(range(len(est.history_)), key=lambda t: (est.history_[t]["val_auc"], -t))
    assert est.best_iteration_ == best


def test_weights_sampling_and_missing_values_train_consistent_models():
    Xg, Xh, y = make_data(missing=0.1)
    plain = SecureBoostClassifier(n_estimators=3, max_depth=2, key_bits=1024)
    _, p_plain = train(plain, Xg, Xh, y)
    weighted = SecureBoostClassifier(n_estimators=3, max_depth=2, key_bits=1024, class_weight="balanced",
                                     subsample=0.8, colsample_bytree=0.5, random_state=4)
    host, p_weighted = train(weighted, Xg, Xh, y)
    assert np.isnan(Xh).any() and (host.missing_left.any() or weighted.part_.missing_left.any())
    # balanced weights move the scores up (positives are the minority)
    assert y.mean() < 0.4 and p_weighted.mean() > p_plain.mean() + 0.05
    # each tree split on at most half of each party's features
    assert len(set(host.feature[host.tree == 0].tolist())) <= 2


def test_clone_and_parameter_checks():
    est = SecureBoostClassifier(n_estimators=5, reg_lambda=2.0)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(TypeError):
        SecureBoostClassifier(5)  # keyword-only
    for bad, match in [({"max_depth": 0}, "max_depth must be an int"), ({"gamma": -1.0}, "gamma must be"),
                       ({"early_stopping": "loss"}, "early_stopping must be"), ({"class_weight": "even"}, "class_weight")]:
        with pytest.raises(ConfigError, match=match):
            SecureBoostClassifier(**bad).check_params()

"""Fidelity on default_credit: HE logistic regression vs the centralized Taylor model and sklearn.

Uses 1024-bit keys (the library default is 2048) and one epoch to keep the suite fast; the
2048-bit figures are in benchmarks/RESULTS.md (benchmarks/bench_hetero_lr.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from tests.algorithms.hetero_lr.lr_centralized import TaylorLogisticRegression
from tests.support.shared_data import hetero_split
from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression, host_fit, host_predict
from vfl.parties import simulate
from vfl.parties.executor import shared_process_pool

PARAMS = dict(epochs=1, batch_size=1024, learning_rate=0.5, optimizer="sgd", penalty="l2",
              alpha=1e-4, random_state=42)


@pytest.mark.slow
def test_default_credit_auc_matches_centralized_and_sklearn(shared_data):
    Xg, y, Xh = hetero_split("default_credit", shared_data)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42)

    est = HeteroLogisticRegression(key_bits=1024, **PARAMS)

    def bank(ctx):
        est.fit(ctx, Xg.iloc[tr], y[tr])
        return est.predict_proba(ctx, Xg.iloc[te])[:, 1]

    def partner(ctx):
        host_predict(ctx, Xh.iloc[te], host_fit(ctx, Xh.iloc[tr]))

    out = simulate({"bank": (bank, {}), "partner": (partner, {})},
                   roles={"bank": "guest", "partner": "host"}, executor=shared_process_pool())
    federated = roc_auc_score(y[te], out["bank"])

    joined = np.hstack([Xg.to_numpy(), Xh.to_numpy()])
    central = TaylorLogisticRegression(**PARAMS).fit(joined[tr], y[tr])
    central_auc = roc_auc_score(y[te], central.predict_proba(joined[te])[:, 1])
    sk = LogisticRegression(max_iter=1000).fit(joined[tr], y[tr])
    sk_auc = roc_auc_score(y[te], sk.predict_proba(joined[te])[:, 1])

    assert abs(federated - central_auc) <= 0.002, (federated, central_auc)
    assert abs(federated - sk_auc) <= 0.01, (federated, sk_auc)
    assert federated > 0.7

"""The federated evaluate step in a simulation: guest + two hosts, messages through the codec."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from vfl.errors import ConfigError, ProtocolError
from vfl.evaluation.federated import CONTRIBUTION, SHARED_METRICS, guest_evaluate, host_evaluate
from vfl.parties import InProcessChannel, simulate

ROLES = {"bank": "guest", "shop": "host", "telco": "host"}


@dataclass
class LinearHostPart:
    """A host's share of a linear model: X_h @ w_h per row (what LR serving sends)."""

    coef_: np.ndarray

    def contribution(self, X: np.ndarray) -> np.ndarray:
        return (X @ self.coef_)[:, None]


@dataclass
class LinearGuestPart:
    coef_: np.ndarray
    intercept_: float

    def predict_proba(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray:
        z = X @ self.coef_ + self.intercept_ + sum(c[:, 0] for c in contributions)
        return 1 / (1 + np.exp(-z))


def three_parties(shared_data, name: str, n_train: int, C: float = 1.0):
    """A linear model trained centrally on guest + host columns, split as bank | shop | telco.

    The host file's columns go half to "shop", half to "telco"; returns the parts, each
    party's aligned test rows, the test labels and the central model's test scores.
    """
    guest = pd.read_csv(shared_data / f"{name}_hetero_guest.csv")
    host = pd.read_csv(shared_data / f"{name}_hetero_host.csv")
    joined = guest.merge(host.rename(columns=lambda c: c.replace("x", "h")), on="id")
    g_cols = [c for c in guest.columns if c.startswith("x")]
    h_cols = [c.replace("x", "h") for c in host.columns if c.startswith("x")]
    cols = {"bank": g_cols, "shop": h_cols[: len(h_cols) // 2], "telco": h_cols[len(h_cols) // 2 :]}
    y = joined["y"].to_numpy()
    train = np.arange(len(y)) < n_train
    x_all = joined[cols["bank"] + cols["shop"] + cols["telco"]].to_numpy()
    central = LogisticRegression(C=C, max_iter=1000).fit(x_all[train], y[train])
    w = np.split(central.coef_[0], np.cumsum([len(cols["bank"]), len(cols["shop"])]))
    parts = {
        "bank": LinearGuestPart(w[0], float(central.intercept_[0])),
        "shop": LinearHostPart(w[1]),
        "telco": LinearHostPart(w[2]),
    }
    test = {party: joined[c].to_numpy()[~train] for party, c in cols.items()}
    return parts, test, y[~train], central.predict_proba(x_all[~train])[:, 1]


@pytest.fixture(scope="module")
def breast(shared_data):
    return three_parties(shared_data, "breast", n_train=400, C=0.1)


def run(breast, tmp_path, taps=None, host_rows=None, **guest_kwargs):
    parts, test, y, _ = breast
    channel = InProcessChannel(list(ROLES), taps=taps)
    host_x = {h: test[h][:host_rows] for h in ("shop", "telco")}
    return simulate(
        {
            "bank": (guest_evaluate, {"model": parts["bank"], "X": test["bank"], "y": y,
                                      "out_dir": tmp_path, **guest_kwargs}),
            "shop": (host_evaluate, {"model": parts["shop"], "X": host_x["shop"]}),
            "telco": (host_evaluate, {"model": parts["telco"], "X": host_x["telco"]}),
        },
        roles=ROLES, channel=channel, timeout=60,
    )  # fmt: skip


def test_federated_evaluate_equals_central_evaluation(breast, tmp_path):
    _, _, y, central_scores = breast
    seen: list[tuple[str, str, str]] = []
    results = run(breast, tmp_path, taps=[lambda s, r, key, _: seen.append((s, r, key))])
    fpr, tpr, _ = sk_roc_curve(y, central_scores)
    assert results["bank"]["auc"] == pytest.approx(roc_auc_score(y, central_scores), abs=1e-12)
    assert results["bank"]["ks"] == pytest.approx(float(np.max(tpr - fpr)), abs=1e-12)
    assert (tmp_path / "report.html").exists() and (tmp_path / "metrics.json").exists()
    for host in ("shop", "telco"):  # hosts get the two shared numbers, nothing else
        assert results[host] == {"auc": results["bank"]["auc"], "ks": results["bank"]["ks"]}
        to_host = [key for s, r, key in seen if r == host]
        assert len(to_host) == 1 and to_host[0].endswith(SHARED_METRICS)
        assert [key.rsplit("/", 1)[1] for s, r, key in seen if s == host] == [CONTRIBUTION]


def test_default_credit_federated_auc_ks_equal_central(shared_data, tmp_path):
    setup = three_parties(shared_data, "default_credit", n_train=20_000)
    _, _, y, central_scores = setup
    result = run(setup, tmp_path)["bank"]
    fpr, tpr, _ = sk_roc_curve(y, central_scores)
    assert result["n_rows"] == 10_000
    assert result["auc"] == pytest.approx(roc_auc_score(y, central_scores), abs=1e-9)
    assert result["ks"] == pytest.approx(float(np.max(tpr - fpr)), abs=1e-9)


def test_guest_can_share_nothing(breast, tmp_path):
    results = run(breast, tmp_path, share_metrics=())
    assert results["shop"] == {} and results["telco"] == {}
    assert results["bank"]["auc"] > 0.9


def test_unknown_shared_metric_is_a_config_error(breast, tmp_path):
    with pytest.raises(ConfigError, match=r"share_metrics \['roc'\]"):
        run(breast, tmp_path, share_metrics=("auc", "roc"))


def test_misaligned_host_rows_are_a_protocol_error(breast, tmp_path):
    with pytest.raises(
        ProtocolError, match=r"host '(shop|telco)' sent a contribution of shape \(100, 1\)"
    ):
        run(breast, tmp_path, host_rows=100)

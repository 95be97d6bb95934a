"""Safe defaults of HE-LR: the batch size follows the row count, and heavy-tailed raw features
(the Taylor approximation's weak spot) are warned about while scaled ones are not."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from tests.algorithms.test_hetero_lr import KEY_BITS, make_data, run_job
from vfl.algorithms.hetero_lr.estimator import INSECURE, HeteroLogisticRegression, _watch_metric
from vfl.algorithms.optim import auto_batch_size
from vfl.parties import simulate
from vfl.preprocessing.preprocessor import PartyPreprocessor

UNSTABLE = "training may be unstable"
INSECURE_HOST = {"p": {"policy_allows_insecure": True}}


def messages(caplog, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


def test_batch_size_follows_the_row_count_and_is_logged(caplog):
    assert [auto_batch_size(n) for n in (100, 800, 30_000, 10**6)] == [64, 64, 1024, 1024]
    (Xg, Xh), y = make_data(800, [3, 3], seed=3)
    est = HeteroLogisticRegression(epochs=1, key_bits=KEY_BITS, tol=None)
    with caplog.at_level(logging.INFO, logger="vfl.party"):
        run_job(est, Xg, y, {"p": Xh})
    [said] = messages(caplog, logging.INFO, "batch_size not given")
    assert "64 rows per batch for 800 training rows (13 gradient steps per epoch)" in said
    assert messages(caplog, logging.WARNING, "gradient step") == []


def test_few_batches_per_epoch_are_warned_about_and_underfit(caplog):
    (Xg, Xh), y = make_data(800, [3, 3], seed=3)
    big = HeteroLogisticRegression(mode=INSECURE, epochs=3, batch_size=1024, tol=None)
    with caplog.at_level(logging.WARNING, logger="vfl.party"):
        p_big, _ = run_job(big, Xg, y, {"p": Xh}, host_kwargs=INSECURE_HOST)
    [warned] = messages(caplog, logging.WARNING, "gradient step")
    assert "batch_size=1024 with 800 training rows makes only 1 gradient step(s) per epoch" in warned
    default = HeteroLogisticRegression(mode=INSECURE, epochs=3, tol=None)
    p_default, _ = run_job(default, Xg, y, {"p": Xh}, host_kwargs=INSECURE_HOST)
    assert log_loss(y, p_default) < log_loss(y, p_big) - 0.1  # one step per epoch barely moves


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(-np.mean(np.where(y == 1, np.log(p), np.log(1 - p))))


def heavy_tailed(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Amounts with heavy right tails (log-normal: median 7, up to a few hundred), the label
    driven by their logarithms."""
    rng = np.random.default_rng(seed)
    raw = np.exp(rng.normal(2, 1, size=(n, 6)))
    z = (np.log(raw) - 2) @ rng.normal(size=6)
    y = (z + rng.logistic(size=n) > 0).astype(int)
    guest = pd.DataFrame(raw[:, :3], columns=["g0", "g1", "g2"])
    host = pd.DataFrame(raw[:, 3:], columns=["h0", "h1", "h2"])
    return guest, host, y


def scaled(frame: pd.DataFrame) -> pd.DataFrame:
    spec = {"numeric": {"columns": list(frame.columns), "clip": [0.01, 0.99], "scale": "standard"}}
    return PartyPreprocessor(config=spec).fit(frame).transform(frame)


def train_with_validation(caplog, guest: pd.DataFrame, host: pd.DataFrame, y: np.ndarray) -> list[str]:
    train, val = slice(0, 1500), slice(1500, None)
    est = HeteroLogisticRegression(mode=INSECURE, epochs=4, learning_rate=0.15, tol=None)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vfl.party"):
        run_job(est, guest[train], y[train], {"p": host[train]},
                fit_kwargs={"X_val": guest[val], "y_val": y[val]},
                host_kwargs={"p": {"policy_allows_insecure": True, "X_val": host[val]}},
                predict={"bank": guest[val], "p": host[val]})
    return messages(caplog, logging.WARNING, UNSTABLE)


@pytest.mark.parametrize("seed", [0, 1])
def test_heavy_tailed_raw_features_warn_and_scaled_ones_do_not(caplog, seed):
    guest, host, y = heavy_tailed(2000, seed)
    raw = train_with_validation(caplog, guest, host, y)
    assert any("of 500 scores have |z| > 4" in m and "clip and scale the features" in m for m in raw), raw
    assert any("hetero LR predict:" in m for m in raw), "evaluation scores are watched too"
    assert train_with_validation(caplog, scaled(guest), scaled(host), y) == []


def test_a_validation_metric_that_falls_between_epochs_is_warned_about(caplog):
    def guest(ctx):
        history = [{"epoch": 1, "val_auc": 0.70}, {"epoch": 2, "val_auc": 0.80}]
        _watch_metric(ctx, history, {"epoch": 3, "val_auc": 0.77}, "auc")  # fell 0.03
        _watch_metric(ctx, history, {"epoch": 3, "val_auc": 0.79}, "auc")  # within noise

    with caplog.at_level(logging.WARNING, logger="vfl.party"):
        simulate({"bank": (guest, {}), "p": (lambda ctx: None, {})}, {"bank": "guest", "p": "host"})
    [warned] = messages(caplog, logging.WARNING, UNSTABLE)
    assert "epoch 3: validation auc fell from 0.8000 to 0.7700" in warned

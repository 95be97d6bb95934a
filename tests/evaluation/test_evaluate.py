"""The evaluate step: metrics.json + report from labels and scores, from Python and from a table."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from vfl.errors import DataError
from vfl.evaluation import evaluate_scores, main_evaluate


@pytest.fixture(scope="module")
def default_credit_scores(shared_data):
    """A central logistic regression on the joined guest + host sides: train and test scores."""
    guest = pd.read_csv(shared_data / "default_credit_hetero_guest.csv")
    host = pd.read_csv(shared_data / "default_credit_hetero_host.csv")
    joined = guest.merge(host, on="id", suffixes=("_g", "_h"))
    x = joined.drop(columns=["id", "y"]).to_numpy()
    y = joined["y"].to_numpy()
    split = 20_000
    model = LogisticRegression(max_iter=1000).fit(x[:split], y[:split])
    return y[split:], model.predict_proba(x[split:])[:, 1], model.predict_proba(x[:split])[:, 1]


def test_default_credit_auc_ks_equal_central_computation(default_credit_scores, tmp_path):
    y, scores, train_scores = default_credit_scores
    result = evaluate_scores(
        y, scores, tmp_path, reference_scores=train_scores, title="default_credit"
    )
    fpr, tpr, _ = sk_roc_curve(y, scores)
    assert result["auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert result["ks"] == pytest.approx(float(np.max(tpr - fpr)), abs=1e-12)
    assert 0.68 < result["auc"] < 0.76 and 0.3 < result["ks"] < 0.45  # the data README's figures
    assert result["psi"] < 0.1  # same population, same model
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["auc"] == result["auc"] and on_disk["ks"] == result["ks"]
    assert (tmp_path / "report.html").stat().st_size > 50_000
    assert sorted(on_disk["files"]["figures"]) == sorted(p.name for p in tmp_path.glob("*.png"))


def test_metrics_json_is_strict_json(tmp_path):
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.4).astype(int)
    s = rng.random(500)
    evaluate_scores(y, s, tmp_path, reference_scores=rng.random(300))
    text = (tmp_path / "metrics.json").read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    stability = doc["tables"]["psi"]
    assert stability[0]["lower"] is None and stability[-1]["upper"] is None  # +-inf edges
    assert all(
        not isinstance(v, float) or math.isfinite(v)
        for row in doc["tables"]["calibration"]
        for v in row.values()
    )


def test_margin_scores_skip_probability_metrics(tmp_path):
    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.5).astype(int)
    margin = rng.normal(size=400) + y
    result = evaluate_scores(y, margin, tmp_path)
    assert result["log_loss"] is None and "calibration" not in result["tables"]
    assert "calibration.png" not in result["files"]["figures"]
    assert "not probabilities" in (tmp_path / "report.html").read_text()


def test_two_column_proba_uses_the_positive_column(tmp_path):
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.5).astype(int)
    p1 = rng.random(300)
    result = evaluate_scores(y, np.column_stack([1 - p1, p1]), tmp_path)
    assert result["auc"] == pytest.approx(roc_auc_score(y, p1))


def test_multiclass_scores(tmp_path):
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, size=300)
    p = rng.dirichlet(np.ones(3), size=300)
    result = evaluate_scores(y, p, tmp_path)
    assert result["task"] == "multiclass" and result["n_classes"] == 3
    assert (tmp_path / "confusion.png").exists() and (tmp_path / "report.html").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == result["accuracy"]


def test_one_class_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="only class 0"):
        evaluate_scores([0, 0, 0], [0.1, 0.2, 0.3], tmp_path)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_main_evaluate_reads_a_table(tmp_path, suffix):
    rng = np.random.default_rng(5)
    n = 800
    frame = pd.DataFrame({"id": np.arange(n), "label": (rng.random(n) < 0.3).astype(int)})
    frame["score"] = 1 / (1 + np.exp(-(rng.normal(size=n) + frame["label"])))
    frame["w"] = rng.uniform(0.5, 2.0, size=n)
    path = tmp_path / f"scores.{suffix}"
    getattr(frame, f"to_{suffix}")(path, index=False)
    reference = tmp_path / "reference.csv"
    frame.assign(score=frame["score"] ** 0.8).to_csv(reference, index=False)

    out = tmp_path / "out"
    result = main_evaluate(
        str(path),
        label_col="label",
        score_col="score",
        out_dir=out,
        weight_col="w",
        reference=str(reference),
    )
    direct = evaluate_scores(
        frame["label"], frame["score"], tmp_path / "direct", sample_weight=frame["w"],
        reference_scores=frame["score"] ** 0.8, title=result["title"],
    )  # fmt: skip
    for key in ("auc", "ks", "ks_binned", "f1", "log_loss", "psi"):
        assert result[key] == direct[key], key
    assert result["weighted"] is True
    assert (out / "report.html").exists() and (out / "metrics.json").exists()


def test_main_evaluate_names_file_and_column(tmp_path):
    path = tmp_path / "scores.csv"
    pd.DataFrame({"y": [0, 1], "p": [0.2, 0.7]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"scores.csv: no score column 'score'"):
        main_evaluate(str(path), out_dir=tmp_path / "out")
    pd.DataFrame({"y": [1, 1], "score": [0.2, 0.7]}).to_csv(path, index=False)
    with pytest.raises(
        DataError, match=r"scores.csv \(label 'y', score 'score'\): y_true has only class 1"
    ):
        main_evaluate(str(path), out_dir=tmp_path / "out")


def test_main_evaluate_multiclass_columns(tmp_path):
    path = tmp_path / "scores.csv"
    rng = np.random.default_rng(6)
    p = rng.dirichlet(np.ones(3), size=200)
    frame = pd.DataFrame(p, columns=["a", "b", "c"]).assign(y=rng.choice(["a", "b", "c"], size=200))
    frame.to_csv(path, index=False)
    result = main_evaluate(str(path), score_col=["a", "b", "c"], out_dir=tmp_path / "out")
    assert result["classes"] == ["a", "b", "c"]
    expected = np.mean(np.array(["a", "b", "c"])[p.argmax(axis=1)] == frame["y"].to_numpy())
    assert result["accuracy"] == pytest.approx(expected)

"""The evaluate step on the guest: labels + joint scores in, metrics.json + PNGs + report.html out.

Only the guest runs this. The scores come from the federated predict path (hosts add their
partial scores without showing features), so nothing here talks to a peer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vfl.algorithms.label_checks import check_binary, check_scores, is_probability
from vfl.connectors import read_table, redact_uri
from vfl.errors import DataError
from vfl.evaluation.binary import binary_metrics, bootstrap_ci, roc
from vfl.evaluation.multiclass import multiclass_metrics
from vfl.evaluation.report import write_report
from vfl.evaluation.tables import calibration_table, lift_table, psi_table, threshold_table

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
TABLE_HEADINGS = {
    "train_vs_test": "Train vs test",
    "thresholds": "Cut-offs: configured, KS-optimal, base rate",
    "lift": "Lift and gain by score band (1 = highest scores)",
    "calibration": "Calibration",
    "psi": "Population stability (reference vs current)",
    "psi_scoring": "Population stability (training vs later scoring)",
}
SUMMARY_TABLES = ("train_vs_test", "thresholds")  # shown before the figures
COMPARED = ("n_rows", "positive_rate", "auc", "gini", "ks", "log_loss", "brier")


def _json_safe(value: Any) -> Any:
    """Non-finite floats become None: JSON has no inf/NaN and other tools choke on them."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return _json_safe(frame.to_dict(orient="records"))


def evaluate_scores(
    y_true: Any,
    scores: Any,
    out_dir: Path | str,
    sample_weight: Any = None,
    reference_scores: Any = None,
    reference_weight: Any = None,
    threshold: float = 0.5,
    n_bins: int = 10,
    title: str = "Model evaluation",
    classes: Sequence[Any] | None = None,
    train_labels: Any = None,
    train_scores: Any = None,
    scoring_scores: Any = None,
    run: Mapping[str, Any] | None = None,
    explanations: Mapping[str, pd.DataFrame] | None = None,
    n_bootstrap: int = 200,
) -> dict[str, Any]:
    """Evaluate scores against labels; write metrics.json, PNG figures and report.html to out_dir.

    Binary scores also get bootstrap confidence intervals of AUC and KS and the metrics at
    three cut-offs.

    Parameters
    ----------
    y_true : array-like
        The labels.
    scores : array-like
        One score per row (binary; an (n, 2) probability matrix uses column 1) or an
        (n, k > 2) probability matrix (multi-class, `classes` names its columns).
    out_dir : str or Path
        Where metrics.json, the PNG figures and report.html go (created if missing).
    sample_weight : array-like or None, default None
        Row weights.
    reference_scores, reference_weight : array-like or None, default None
        A reference sample (e.g. the training scores, or last month's): adds the PSI of
        `scores` against it.
    threshold : float, default 0.5
        The cut-off of the threshold metrics.
    n_bins : int, default 10
        Bins of the lift, gain, calibration and PSI tables.
    title : str, default "Model evaluation"
        The report's title.
    classes : sequence or None, default None
        Names of the columns of a multi-class matrix.
    train_labels, train_scores : array-like or None, default None
        Train vs test metrics; the training scores are the PSI reference unless
        `reference_scores` is given.
    scoring_scores : array-like or None, default None
        A later batch scoring: adds its PSI against the training scores.
    run : mapping or None, default None
        The job's metadata, which opens the report.
    explanations : mapping of str to DataFrame or None, default None
        Named tables (the guest's coefficients, IV) that close the report.
    n_bootstrap : int, default 200
        Bootstrap resamples of the confidence intervals; 0 for none.

    Returns
    -------
    dict
        What metrics.json holds: the scalar metrics at top level, binned tables under
        "tables", written files under "files".

    Raises
    ------
    DataError
        Labels and scores do not match (lengths, classes, non-finite values).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(scores)
    if matrix.ndim == 2 and matrix.shape[1] > 2:
        result = _evaluate_multiclass(y_true, matrix, out, sample_weight, title, classes)
    else:
        if matrix.ndim == 2 and matrix.shape[1] == 2:
            scores = matrix[:, 1]
        extras = _Extras(train_labels, train_scores, scoring_scores, run or {}, explanations or {},
                         n_bootstrap)
        result = _evaluate_binary(
            y_true, scores, out, sample_weight, reference_scores, reference_weight,
            threshold, n_bins, title, extras,
        )  # fmt: skip
    (out / METRICS_FILE).write_text(json.dumps(_json_safe(result), indent=2), encoding="utf-8")
    return result


def _evaluate_binary(
    y_true: Any,
    scores: Any,
    out: Path,
    sample_weight: Any,
    reference_scores: Any,
    reference_weight: Any,
    threshold: float,
    n_bins: int,
    title: str,
    extras: _Extras,
) -> dict[str, Any]:
    from vfl.evaluation import plots  # matplotlib only when figures are drawn

    y, s, w = check_binary(y_true, scores, sample_weight)
    metrics = binary_metrics(y, s, sample_weight, threshold=threshold, n_bins=n_bins)
    if extras.n_bootstrap:
        ci = bootstrap_ci(y, s, w, n_resamples=extras.n_bootstrap)
        metrics["auc_ci95"], metrics["ks_ci95"] = list(ci["auc"]), list(ci["ks"])
    curve = roc(y, s, w)
    lift = lift_table(y, s, n_bins=n_bins, sample_weight=w)
    tables: dict[str, pd.DataFrame] = {}
    train_metrics, from_train = None, False
    if extras.train_scores is not None:
        y_train, s_train, _ = check_binary(extras.train_labels, extras.train_scores)
        train_metrics = binary_metrics(y_train, s_train, threshold=threshold, n_bins=n_bins)
        tables["train_vs_test"] = pd.DataFrame(
            [{"metric": k, "train": train_metrics[k], "test": metrics[k],
              "test - train": None if train_metrics[k] is None or metrics[k] is None
              else metrics[k] - train_metrics[k]} for k in COMPARED])
        from_train = reference_scores is None
        if from_train:
            reference_scores = s_train
    tables["thresholds"] = threshold_table(y, s, threshold, w)
    tables["lift"] = lift
    figures = [
        ("ROC curve", plots.plot_roc(curve, out / "roc.png")),
        ("KS curve", plots.plot_ks(curve, out / "ks.png")),
        ("Lift chart", plots.plot_lift(lift, out / "lift.png")),
        ("Cumulative gain chart", plots.plot_gain(lift, out / "gain.png")),
        (
            "Score distribution by class",
            plots.plot_score_distribution(y, s, w, out / "score_distribution.png"),
        ),
    ]
    notes = []
    if is_probability(s):
        calibration = calibration_table(y, s, n_bins=n_bins, sample_weight=w)
        tables["calibration"] = calibration
        figures.append(
            ("Calibration", plots.plot_calibration(calibration, out / "calibration.png"))
        )
    else:
        notes.append(
            "Scores are not probabilities in [0, 1]: no log loss, Brier score or calibration."
        )
    if reference_scores is not None:
        stability = psi_table(
            reference_scores, s, n_bins=n_bins, reference_weight=reference_weight, current_weight=w
        )
        metrics["psi"] = float(stability["psi"].sum())
        tables["psi"] = stability
        figures.append(("Population stability", plots.plot_psi(stability, out / "psi.png")))
    if extras.scoring_scores is not None and extras.train_scores is not None:
        later = psi_table(extras.train_scores, check_scores(extras.scoring_scores), n_bins=n_bins)
        metrics["psi_scoring"] = float(later["psi"].sum())
        tables["psi_scoring"] = later
        figures.append(("Population stability: training vs later scoring",
                        plots.plot_psi(later, out / "psi_scoring.png")))
    notes.append(
        "ks: exact max(TPR - FPR) over all thresholds; "
        f"ks_binned: SecretFlow-style, {n_bins} equal-frequency bins; ks_fate: FATE 1.x, 100 rank cuts."
    )
    headings = dict(TABLE_HEADINGS)
    if from_train:
        headings["psi"] = "Population stability (training vs test scores)"
    summary = {headings[n]: tables[n] for n in SUMMARY_TABLES if n in tables}
    headed = {headings[n]: frame for n, frame in tables.items() if n not in SUMMARY_TABLES}
    headed.update(extras.explanations)
    write_report(out / REPORT_FILE, title, metrics, figures, headed, notes, run=extras.run,
                 summary_tables=summary)
    return {
        "task": "binary",
        "title": title,
        **metrics,
        **({"train": train_metrics} if train_metrics is not None else {}),
        **({"run": dict(extras.run)} if extras.run else {}),
        "tables": {name: _records(frame) for name, frame in
                   [*tables.items(), *extras.explanations.items()]},
        "files": {"report": REPORT_FILE, "figures": [p.name for _, p in figures]},
    }


@dataclass
class _Extras:
    """What a job adds to a binary evaluation (see `evaluate_scores`)."""

    train_labels: Any
    train_scores: Any
    scoring_scores: Any
    run: Mapping[str, Any]
    explanations: Mapping[str, pd.DataFrame]
    n_bootstrap: int


def _evaluate_multiclass(
    y_true: Any,
    proba: np.ndarray,
    out: Path,
    sample_weight: Any,
    title: str,
    classes: Sequence[Any] | None,
) -> dict[str, Any]:
    from vfl.evaluation import plots  # matplotlib only when figures are drawn

    metrics = multiclass_metrics(y_true, proba, classes=classes, sample_weight=sample_weight)
    figure = plots.plot_confusion(
        np.asarray(metrics["confusion_matrix"]), metrics["classes"], out / "confusion.png"
    )
    write_report(out / REPORT_FILE, title, metrics, [("Confusion matrix", figure)])
    return {
        "task": "multiclass",
        "title": title,
        **metrics,
        "weighted": sample_weight is not None,
        "files": {"report": REPORT_FILE, "figures": [figure.name]},
    }


def _column(frame: pd.DataFrame, name: str, source: str, role: str) -> pd.Series:
    if name not in frame.columns:
        raise DataError(
            f"{redact_uri(source)}: no {role} column {name!r} (columns: {list(frame.columns)[:20]})"
        )
    return frame[name]


def main_evaluate(
    source: str | Path,
    label_col: str = "y",
    score_col: str | Sequence[str] = "score",
    out_dir: Path | str = "evaluation",
    weight_col: str | None = None,
    reference: str | Path | None = None,
    reference_score_col: str | None = None,
    threshold: float = 0.5,
    n_bins: int = 10,
    title: str | None = None,
) -> dict[str, Any]:
    """`vfl evaluate`: read labels + scores from a table, write metrics.json and report.html.

    `source` is any `vfl.connectors` URI (CSV/Parquet file or directory, HDFS, SQL).

    `score_col` may list several columns (a multi-class probability matrix; the column
    names are the classes). `reference` is a second table whose `reference_score_col`
    (default: `score_col`) is the PSI baseline.
    """
    src = str(source)
    frame = read_table(src)
    y = _column(frame, label_col, src, "label")
    weights = _column(frame, weight_col, src, "weight") if weight_col else None
    if isinstance(score_col, str):
        scores: Any = _column(frame, score_col, src, "score").to_numpy()
        classes = None
    else:
        cols = list(score_col)
        scores = np.column_stack([_column(frame, c, src, "score").to_numpy() for c in cols])
        classes = cols
        y = y.astype(str)
    ref_scores = None
    if reference is not None:
        ref_col = reference_score_col or (score_col if isinstance(score_col, str) else None)
        if ref_col is None:
            raise DataError("reference_score_col is required with a multi-column score_col")
        ref_scores = check_scores(
            _column(read_table(str(reference)), ref_col, str(reference), "score")
        )
    try:
        return evaluate_scores(
            y.to_numpy(),
            scores,
            out_dir,
            sample_weight=None if weights is None else weights.to_numpy(),
            reference_scores=ref_scores,
            threshold=threshold,
            n_bins=n_bins,
            title=title or f"Evaluation of {redact_uri(src)}",
            classes=classes,
        )
    except DataError as exc:
        raise DataError(
            f"{redact_uri(src)} (label {label_col!r}, score {score_col!r}): {exc}"
        ) from None

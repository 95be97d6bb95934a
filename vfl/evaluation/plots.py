"""Evaluation figures as PNG files.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas, never pyplot: no
display is needed, no global figure state leaks between threads (simulated parties run as
threads) and nothing is left open after a report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vfl.evaluation.binary import RocCurve

_SIZE = (6.0, 4.5)
_DPI = 100


def _new() -> tuple[Figure, Axes]:
    fig = Figure(figsize=_SIZE, dpi=_DPI, layout="tight")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_roc(curve: RocCurve, path: Path) -> Path:
    fig, ax = _new()
    ax.plot(curve.fpr, curve.tpr, color="C0", label=f"ROC (AUC = {curve.auc:.4f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="random")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC curve",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_ks(curve: RocCurve, path: Path) -> Path:
    """TPR and FPR against the share of the population predicted positive."""
    return _save(ks_figure(curve), path)


def ks_figure(curve: RocCurve) -> Figure:
    """The KS figure, its legend below the axes (inside, it covers the curves in any corner)."""
    fig, ax = _new()
    x = curve.population_share
    i = int(np.argmax(curve.ks_curve))
    ax.plot(x, curve.tpr, label="cumulative positives (TPR)")
    ax.plot(x, curve.fpr, label="cumulative negatives (FPR)")
    ax.plot(x, curve.ks_curve, color="grey", linewidth=1, label="TPR - FPR")
    ax.vlines(
        x[i],
        curve.fpr[i],
        curve.tpr[i],
        color="C3",
        linestyle="--",
        label=f"KS = {curve.ks:.4f} at score {curve.thresholds[i]:.4g}",
    )
    ax.set(
        xlabel="share of population predicted positive (highest scores first)",
        ylabel="cumulative share",
        title="KS curve",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small", frameon=False)
    return fig


def plot_lift(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = _new()
    bins = table["bin"].to_numpy()
    ax.bar(bins, table["lift"], color="C0", alpha=0.7, label="lift per band")
    ax.plot(bins, table["cum_lift"], color="C1", marker="o", label="cumulative lift")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="score band (1 = highest scores)", ylabel="lift", title="Lift chart", xticks=bins)
    ax.legend()
    return _save(fig, path)


def plot_gain(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = _new()
    x = np.r_[0.0, table["cum_population"].to_numpy()]
    ax.plot(x, np.r_[0.0, table["gain"].to_numpy()], marker="o", label="model")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="random")
    ax.set(
        xlabel="share of population (highest scores first)",
        ylabel="share of positives captured",
        title="Cumulative gain chart",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_score_distribution(y: np.ndarray, s: np.ndarray, w: np.ndarray, path: Path) -> Path:
    fig, ax = _new()
    edges = np.histogram_bin_edges(s, bins=40)
    for label, name, color in ((0, "negatives", "C0"), (1, "positives", "C3")):
        m = y == label
        ax.hist(
            s[m], bins=edges.tolist(), weights=w[m] / w[m].sum(), alpha=0.5, color=color, label=name
        )
    ax.set(xlabel="score", ylabel="share of class", title="Score distribution by class")
    ax.legend()
    return _save(fig, path)


def plot_calibration(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = _new()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed positive rate",
        title="Calibration",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_psi(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = _new()
    bins = table["bin"].to_numpy()
    ax.bar(bins - 0.2, table["reference_share"], width=0.4, label="reference")
    ax.bar(bins + 0.2, table["current_share"], width=0.4, label="current")
    ax.set(
        xlabel="reference quantile bin",
        ylabel="share of population",
        title=f"Population stability (PSI = {table['psi'].sum():.4f})",
        xticks=bins,
    )
    ax.legend()
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, classes: list, path: Path) -> Path:
    fig, ax = _new()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = np.arange(len(classes))
    ax.set(
        xticks=ticks,
        yticks=ticks,
        xticklabels=[str(c) for c in classes],
        yticklabels=[str(c) for c in classes],
        xlabel="predicted",
        ylabel="true",
        title="Confusion matrix",
    )
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize="small")
    return _save(fig, path)

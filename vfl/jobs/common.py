"""What the stages of a job share: the aligned rows, the outcome, the step timer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vfl.connectors import Dataset
from vfl.parties.compute import Compute
from vfl.serving.sources import source_for

TEST_SCORES = "test_scores.csv"
"""Written beside the report: id, label and joint score of every test row (re-evaluable)."""


@dataclass
class JobOutcome:
    """What the guest gets back from a job: sizes, metrics, where the report and model are.

    Attributes
    ----------
    job_id : str
        The job's id (also the version of its exported model).
    intersection_size : int
        Customers common to every party after PSI.
    metrics : dict
        The evaluation's metrics (as in metrics.json).
    report : str or None
        Path of report.html, when the job evaluated.
    model_id : str or None
        The exported model's id, when the job exported.
    scored : dict or None
        The score step's summary, when it ran.
    seconds : dict of str to float
        Wall time per step.
    """

    job_id: str
    intersection_size: int
    metrics: dict[str, Any]
    report: str | None
    model_id: str | None
    scored: dict[str, Any] | None
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """The headline as a codec value: what a party service reports back to the submitter."""
        return {
            "job_id": self.job_id, "intersection_size": self.intersection_size,
            "metrics": headline(self.metrics), "report": self.report, "model_id": self.model_id,
            "scored": self.scored, "seconds": self.seconds,
        }

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> JobOutcome:
        return cls(**summary)


@dataclass
class Aligned:
    """A party's rows in the common order after PSI, with the train/test positions."""

    X: pd.DataFrame
    y: np.ndarray | None
    train: np.ndarray
    test: np.ndarray


def take(frame: Any, rows: np.ndarray | None) -> Any:
    """`frame`'s rows at `rows` (the PSI order), renumbered; all rows when `rows` is None."""
    return frame if rows is None else frame.iloc[rows].reset_index(drop=True)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a job reports back and stores with the model."""
    return {k: metrics[k] for k in ("auc", "ks", "ks_binned", "log_loss", "brier") if k in metrics}


def feature_source(dataset: Dataset, compute: Compute) -> Any:
    """Where scoring reads features by id: the trained dataset, its feature list made explicit
    (a SQL source selects exactly these columns), kept on the workers of a Dask `compute`."""
    return source_for(dataset.spec, name=dataset.name, columns=list(dataset.X.columns), compute=compute)


class Timer:
    """`with timer("psi"):` records each step's wall time for the job summary."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._name = ""
        self._start = 0.0

    def __call__(self, name: str) -> Timer:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._name] = round(time.perf_counter() - self._start, 3)

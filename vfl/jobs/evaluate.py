"""The evaluate stage of a job: every host's IV (anonymous on the guest), the joint scores of
the training and test rows through the contributions protocol, and the report on the guest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vfl.config import JobConfig
from vfl.connectors import write_table
from vfl.evaluation import evaluate_scores
from vfl.evaluation.explain import coefficients_table, iv_table
from vfl.jobs.common import Aligned, Timer
from vfl.jobs.train import GuestModel, HostModel
from vfl.parties.context import Context
from vfl.parties.runtime import PartyRuntime
from vfl.preprocessing import woe
from vfl.preprocessing.preprocessor import PartyPreprocessor
from vfl.store.files import seal


@dataclass
class Evaluation:
    """The guest's scores of the training and test rows and what explains them."""

    job: JobConfig
    y_train: np.ndarray
    y_test: np.ndarray
    train_scores: np.ndarray
    test_scores: np.ndarray
    explanations: dict[str, pd.DataFrame]

    def write(self, out_dir: Any, run: dict[str, Any], later: Any = None) -> dict[str, Any]:
        """metrics.json, the figures and report.html in `out_dir`; returns the metrics."""
        step = self.job.steps.evaluate
        assert step is not None
        return evaluate_scores(self.y_test, self.test_scores, out_dir, threshold=step.threshold,
                               title=f"{run['job_id']}: {run['algorithm']}", train_labels=self.y_train,
                               train_scores=self.train_scores, scoring_scores=later, run=run,
                               explanations=self.explanations, n_bootstrap=step.bootstrap)


def guest(ctx: Context, job: JobConfig, model: GuestModel, data: Aligned,
          X_train: np.ndarray, X_test: np.ndarray, pre: PartyPreprocessor | None) -> Evaluation:
    """Every host's IV (anonymous columns; with `iv`), then the joint scores of the training
    rows and of the test rows; the guest's own coefficients and IV by name."""
    step = job.steps.evaluate
    assert step is not None and data.y is not None
    ev = ctx.child("evaluate")
    y_train = data.y[data.train]
    explanations: dict[str, pd.DataFrame] = {}
    if step.iv:
        hosts = woe.guest(ev.child("iv"), y_train, key_bits=model.estimator.key_bits)
        explanations[f"IV of {ctx.name}'s features (training rows)"] = iv_table(
            woe.centralized(data.X.iloc[data.train], y_train).iv)
        for host_name, found in hosts.items():  # in the host's column order, under no name
            anonymous = found.iv.set_axis([f"{host_name} #{i + 1}" for i in range(len(found.iv))])
            explanations[f"IV of {host_name}'s features (names stay with {host_name})"] = iv_table(anonymous)
    names = pre.feature_names_out_ if pre is not None else [str(c) for c in data.X.columns]
    coefficients = coefficients_table(model.part, names)
    if coefficients is not None:
        explanations[f"Coefficients of {ctx.name}'s features (after preprocessing)"] = coefficients
    train_scores = model.predict_proba(ev.child("train"), X_train)
    test_scores = model.predict_proba(ev, X_test)
    return Evaluation(job, y_train, data.y[data.test], train_scores, test_scores, explanations)


def host(ctx: Context, party: PartyRuntime, job: JobConfig, model: HostModel, data: Aligned,
         X_train: np.ndarray, X_test: np.ndarray) -> None:
    """This host's IV by its own column names (kept here), then its contributions to the
    guest's scores of the training and test rows."""
    step = ctx.child("evaluate")
    assert job.steps.evaluate is not None
    if job.steps.evaluate.iv:
        own = woe.host(step.child("iv"), data.X.iloc[data.train])
        if own.iv is not None:
            path = party.job_dir(ctx.job_id, "evaluate") / "iv.csv"
            write_table(iv_table(own.iv), str(path))
            seal(path)
            ctx.log.info("IV of this party's %d features: %s", len(own.iv), path)
    model.predict(step.child("train"), X_train)
    model.predict(step, X_test)


def run_metadata(ctx: Context, job: JobConfig, dataset_rows: int, intersection: int, data: Aligned,
                 model: GuestModel, timer: Timer) -> dict[str, Any]:
    """What the report's Run section shows: ids, parties, sizes, algorithm, durations."""
    export = job.steps.export
    return {
        "job_id": ctx.job_id,
        "model_id": export.model_id if export else None,
        "model_version": ctx.job_id if export else None,
        "parties": job.roles,
        "datasets": dict(job.datasets),
        "rows": {f"{ctx.name} dataset": dataset_rows, "intersection": intersection,
                 "train": len(data.train), "test": len(data.test)},
        "algorithm": job.steps.train.algorithm,
        "parameters": dict(job.steps.train.params) or "defaults",
        "key_bits": model.estimator.key_bits,
        "seconds": dict(timer.seconds),
    }

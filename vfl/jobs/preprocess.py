"""The preprocessing stage of a job, the same on every party: its own pipeline from its own
party config, checked against its columns before PSI, fitted on its own training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vfl.config import JobConfig
from vfl.connectors import Dataset
from vfl.errors import DataError
from vfl.jobs.common import Aligned
from vfl.parties.context import Context
from vfl.parties.runtime import PartyRuntime
from vfl.preprocessing.preprocessor import PartyPreprocessor, PreprocessingConfig, check_input


def pipeline(party: PartyRuntime, job: JobConfig) -> dict[str, Any] | None:
    """This party's preprocessing for its dataset of the job: run unless the job says
    ``preprocess: false`` or the party configures none."""
    if job.steps.preprocess is False:
        return None
    return party.config.preprocessing.get(job.datasets[party.name])


def check_features(party: PartyRuntime, job: JobConfig, dataset: Dataset) -> None:
    """Before PSI: the columns suit the preprocessing this job will run, or, without one,
    training itself (numbers, nothing missing); errors name the party, dataset and column."""
    where = f"party '{party.name}', dataset '{dataset.name}'"
    spec = pipeline(party, job)
    if spec is not None:
        cfg = PreprocessingConfig.parse(spec, source=f"party '{party.name}' config: preprocessing.{dataset.name}")
        check_input(cfg, dataset.X, where)
        return
    why = ("the job says preprocess: false" if job.steps.preprocess is False
           else f"the party config has no preprocessing for '{dataset.name}'")
    raw = [str(c) for c in dataset.X.columns if not pd.api.types.is_numeric_dtype(dataset.X[c])]
    if raw:
        raise DataError(f"{where}: column(s) {raw} are not numeric and would reach training "
                        f"unencoded ({why}); encode them in the party's preprocessing "
                        "(a categorical group) or drop them from features:")
    gaps = [str(c) for c in dataset.X.columns if dataset.X[c].isna().any()]
    if gaps:
        raise DataError(f"{where}: column(s) {gaps} have missing values and would reach "
                        f"training unimputed ({why}); impute them in the party's preprocessing")


def run(
    ctx: Context, party: PartyRuntime, job: JobConfig, data: Aligned
) -> tuple[PartyPreprocessor | None, np.ndarray, np.ndarray]:
    """Fit this party's own pipeline on its own training rows; replay it on the test rows."""
    X_train, X_test = data.X.iloc[data.train], data.X.iloc[data.test]
    spec = pipeline(party, job)
    if spec is None:
        ctx.log.info("no preprocessing: training on the raw columns")
        return None, X_train.to_numpy(np.float64), X_test.to_numpy(np.float64)
    pre = PartyPreprocessor(config=spec).fit(X_train)
    train = pre.transform(X_train).to_numpy(np.float64)
    test = pre.transform(X_test).to_numpy(np.float64) if len(X_test) else np.zeros((0, train.shape[1]))
    ctx.log.info("preprocessed %d raw columns into %d features", X_train.shape[1], train.shape[1])
    return pre, train, test

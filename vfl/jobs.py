"""The whole pipeline as one protocol: psi -> split -> preprocess -> train -> evaluate -> export
-> score, the guest's and the hosts' roles side by side.

The guest drives (`run_guest`); each host runs `run_host` when the guest's job reaches its
service and its policy allows it. A host reads its own data, preprocessing and model settings
from its own party config: the guest's job spec only names datasets, steps and the guest's
hyper-parameters. Every step runs in a child context (`ctx.child("psi")`, ...), so its
messages never mix with another step's.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vfl.algorithms import training
from vfl.algorithms.preprocessing import PartyPreprocessor
from vfl.config import JobConfig, SplitStep, parse
from vfl.connectors import Dataset, write_table
from vfl.errors import DataError, ProtocolError
from vfl.evaluation import evaluate_scores
from vfl.parties import registry
from vfl.parties.context import GUEST, Context
from vfl.parties.runtime import PartyRuntime
from vfl.psi import ecdh
from vfl.serving.bundle import ModelBundle
from vfl.serving.features import source_for
from vfl.serving.scoring import GuestScorer, HostScorer, score_batch
from vfl.serving.session import ContextHost, serve_partials
from vfl.storage import inside

TEST_SCORES = "test_scores.csv"
"""Written beside the report: id, label and joint score of every test row (re-evaluable)."""


@dataclass
class JobOutcome:
    """What the guest gets back from a job: sizes, metrics, where the report and model are."""

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
            "metrics": _headline(self.metrics), "report": self.report, "model_id": self.model_id,
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


def job_params(job: JobConfig) -> dict[str, Any]:
    """The params of protocol "job": a spec for the hosts, the full job for the guest only.

    Hosts see dataset names, steps and the guest's hyper-parameters; the guest's output
    folder and scoring source/sink stay on the guest (the service strips ``GUEST_ONLY``).
    """
    full = job.model_dump(mode="json", exclude={"parties"})
    spec = copy.deepcopy(full)
    steps = spec["steps"]
    if steps.get("evaluate") is not None:
        steps["evaluate"]["out_dir"] = REDACTED
    if steps.get("score") is not None:
        steps["score"].update(source=REDACTED, sink=REDACTED)
    return {"spec": spec, registry.GUEST_ONLY: full}


REDACTED = "(kept by the guest)"


@registry.register("job")
def job_protocol(ctx: Context, party: PartyRuntime, params: Any) -> dict[str, Any]:
    """The whole pipeline as a protocol of the party service: the guest runs the job its
    operator submitted, each host answers with its own data and settings."""
    if not isinstance(params, dict):
        raise ProtocolError(f"protocol 'job': params must be a mapping, got {type(params).__name__}")
    if ctx.role == GUEST:
        if registry.GUEST_ONLY not in params:
            raise ProtocolError("protocol 'job': the guest's params carry no job")
        job = parse(JobConfig, params[registry.GUEST_ONLY], "job")
        return run_guest(ctx, party, job).summary()
    return run_host(ctx, party, params)


# --- guest -------------------------------------------------------------------------------


def run_guest(ctx: Context, party: PartyRuntime, job: JobConfig) -> JobOutcome:
    steps, timer = job.steps, _Timer()
    dataset = party.dataset(job.datasets[ctx.name])
    if dataset.y is None:
        raise DataError(f"the guest's dataset '{dataset.name}' declares no label column")

    rows, size = None, dataset.n_rows
    if steps.psi is not None:
        with timer("psi"):
            result = ecdh.guest(ctx.child("psi"), dataset.ids, cardinality_only=steps.psi.cardinality_only)
        if result.cardinality_only:
            return JobOutcome(ctx.job_id, result.size, {}, None, None, None, timer.seconds)
        rows, size = result.rows, result.size

    y = _take(dataset.y, rows).to_numpy()
    train, test = _split_rows(y, steps.split)
    ctx.child("split").broadcast("test_rows", test)
    data = Aligned(_take(dataset.X, rows), y, train, test)

    with timer("preprocess"):
        pre, X_train, X_test = _preprocess(ctx, party, job, data)
    with timer("train"):
        model = training.guest_fit(ctx.child("train"), steps.train, X_train, y[train],
                                   party.job_dir(ctx.job_id, "train"))

    metrics: dict[str, Any] = {}
    report = None
    if steps.evaluate is not None and len(test):
        with timer("evaluate"):
            scores = model.predict_proba(ctx.child("evaluate"), X_test)
            out_dir = inside(steps.evaluate.out_dir, ctx.job_id)
            metrics = evaluate_scores(y[test], scores, out_dir, threshold=steps.evaluate.threshold,
                                      title=f"{ctx.job_id}: {steps.train.algorithm}")
            test_ids = _take(dataset.ids, rows).iloc[test].reset_index(drop=True)
            write_table(test_ids.assign(y=y[test], score=scores), str(out_dir / TEST_SCORES))
            report = str(out_dir / "report.html")

    bundle = ModelBundle(steps.train.algorithm, "guest", model.part, list(dataset.X.columns), pre)
    model_id = None
    if steps.export is not None:
        with timer("export"):
            model_id = _export(ctx, party, job, bundle, metrics)

    scored = None
    if steps.score is not None:
        with timer("score"):
            scored = _score_guest(ctx.child("score"), party, job, bundle, dataset)
    return JobOutcome(ctx.job_id, size, metrics, report, model_id, scored, timer.seconds)


# --- host --------------------------------------------------------------------------------


def run_host(ctx: Context, party: PartyRuntime, params: dict[str, Any]) -> dict[str, Any]:
    """The host's side of a job the guest started; `params` is `job_params` without the
    guest's own part."""
    job = parse(JobConfig, params.get("spec"), f"job spec from '{ctx.guest}'")
    steps = job.steps
    dataset = party.dataset(job.datasets[ctx.name])

    rows = None
    if steps.psi is not None:
        result = ecdh.host(ctx.child("psi"), dataset.ids,
                           min_intersection=party.config.policy.min_intersection)
        if result.cardinality_only:
            return {"intersection_size": result.size}
        rows = result.rows
    X = _take(dataset.X, rows)
    test = _received_rows(ctx.child("split").recv(ctx.guest, "test_rows"), len(X))
    data = Aligned(X, None, np.setdiff1d(np.arange(len(X)), test), test)

    pre, X_train, X_test = _preprocess(ctx, party, job, data)
    model = training.host_fit(ctx.child("train"), steps.train, X_train, party,
                              party.job_dir(ctx.job_id, "train"))
    if steps.evaluate is not None and len(test):
        model.predict(ctx.child("evaluate"), X_test)

    bundle = ModelBundle(steps.train.algorithm, "host", model.part, list(dataset.X.columns), pre)
    if steps.export is not None:
        _export(ctx, party, job, bundle, {})
    if steps.score is not None:
        scorer = HostScorer(bundle, _feature_source(dataset))
        serve_partials(ctx.child("score"), scorer)
    return {"intersection_size": len(X)}


# --- the steps both sides share ----------------------------------------------------------


def _preprocess(
    ctx: Context, party: PartyRuntime, job: JobConfig, data: Aligned
) -> tuple[PartyPreprocessor | None, np.ndarray, np.ndarray]:
    """Fit this party's own pipeline on its own training rows; replay it on the test rows."""
    X_train, X_test = data.X.iloc[data.train], data.X.iloc[data.test]
    spec = party.config.preprocessing.get(job.datasets[ctx.name])
    if job.steps.preprocess is None or spec is None:
        return None, X_train.to_numpy(np.float64), X_test.to_numpy(np.float64)
    pre = PartyPreprocessor(spec).fit(X_train)
    train = pre.transform(X_train).to_numpy(np.float64)
    test = pre.transform(X_test).to_numpy(np.float64) if len(X_test) else np.zeros((0, train.shape[1]))
    ctx.log.info("preprocessed %d raw columns into %d features", X_train.shape[1], train.shape[1])
    return pre, train, test


def _export(ctx: Context, party: PartyRuntime, job: JobConfig, bundle: ModelBundle,
            metrics: dict[str, Any]) -> str:
    """Each party stores its own part under the shared model id, version = the job id."""
    assert job.steps.export is not None
    model_id = job.steps.export.model_id
    store = party.model_store()
    if any(r.version == ctx.job_id for r in store.list(model_id)):
        ctx.log.info("model '%s' version '%s' was exported by an earlier attempt of this job",
                     model_id, ctx.job_id)  # a resumed job reaches the same model
    else:
        store.save(model_id, ctx.job_id, role=ctx.role, kind=bundle.algorithm, write=bundle.save,
                   peers=sorted(ctx.peers), metrics=_headline(metrics))
    if job.steps.export.promote:
        store.promote(model_id, ctx.job_id)
    ctx.log.info("exported model '%s' version '%s'", model_id, ctx.job_id)
    return model_id


def _score_guest(ctx: Context, party: PartyRuntime, job: JobConfig, bundle: ModelBundle,
                 dataset: Dataset) -> dict[str, Any]:
    """Batch scoring inside the job: ids (and guest features) from a source, scores to a sink."""
    step = job.steps.score
    assert step is not None
    hosts = [ContextHost(ctx, h) for h in ctx.hosts]
    scorer = GuestScorer(bundle, hosts, _feature_source(dataset))
    try:
        summary = score_batch(
            scorer, step.source, step.sink, id_column=dataset.spec.id_columns[0],
            chunk_rows=step.chunk_rows,
            on_progress=lambda n, s: ctx.progress(s.rows, s.rows, chunks=n, rows_per_s=s.rows_per_second),
        )
    finally:
        scorer.close()
    for h in hosts:  # only now: on an error the hosts learn that the job failed instead
        h.finish()
    return {"rows": summary.rows, "scored": summary.scored, "missing": summary.missing,
            "seconds": round(summary.seconds, 3)}


def _feature_source(dataset: Dataset) -> Any:
    """Where scoring reads features by id: the trained dataset, its feature list made explicit
    (a SQL source selects exactly these columns)."""
    return source_for(dataset.spec, name=dataset.name, columns=list(dataset.X.columns))


def _split_rows(y: np.ndarray, split: SplitStep | None) -> tuple[np.ndarray, np.ndarray]:
    """Train/test positions in the aligned order; the guest decides (it holds the labels)."""
    n = len(y)
    if split is None:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(split.seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if split.stratify else [np.arange(n)]
    test = np.sort(np.concatenate([
        rng.choice(g, size=int(round(len(g) * split.test_size)), replace=False) for g in groups
    ])).astype(np.int64)
    return np.setdiff1d(np.arange(n), test), test


def _received_rows(rows: Any, n: int) -> np.ndarray:
    if not isinstance(rows, np.ndarray) or rows.dtype != np.int64 or rows.ndim != 1:
        raise ProtocolError("'test_rows' from the guest must be a 1-D int64 array")
    if len(rows) and (rows.min() < 0 or rows.max() >= n or np.any(np.diff(rows) <= 0)):
        raise ProtocolError(f"'test_rows' from the guest must be sorted unique positions below {n}")
    return rows


def _take(frame: Any, rows: np.ndarray | None) -> Any:
    return frame if rows is None else frame.iloc[rows].reset_index(drop=True)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("auc", "ks", "ks_binned", "log_loss", "brier") if k in metrics}


class _Timer:
    """`with timer("psi"):` records each step's wall time for the job summary."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._name = ""
        self._start = 0.0

    def __call__(self, name: str) -> _Timer:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._name] = round(time.perf_counter() - self._start, 3)

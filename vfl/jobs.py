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
from vfl.config import JobConfig, SplitStep
from vfl.connectors import Dataset, read_table, write_table
from vfl.connectors.dataset import id_types
from vfl.errors import DataError, ProtocolError
from vfl.evaluation import evaluate_scores
from vfl.evaluation.explain import coefficients_table, iv_table
from vfl.parties import registry
from vfl.parties.config import parse
from vfl.parties.context import GUEST, Context
from vfl.parties.runtime import PartyRuntime
from vfl.preprocessing import woe
from vfl.preprocessing.preprocessor import PartyPreprocessor, PreprocessingConfig, check_input
from vfl.psi import ecdh
from vfl.serving.batch import score_batch
from vfl.serving.bundle import ModelBundle
from vfl.serving.features import source_for
from vfl.serving.scoring import GuestScorer, HostScorer
from vfl.serving.session import ContextHost, serve_partials
from vfl.store.files import inside, seal

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
    _check_features(party, job, dataset)

    rows, size = None, dataset.n_rows
    if steps.psi is not None:
        with timer("psi"):
            result = ecdh.guest(ctx.child("psi"), dataset.ids, cardinality_only=steps.psi.cardinality_only,
                                normalize_ids=_normalization(dataset), warn_ratio=steps.psi.warn_ratio)
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
    evaluation = None
    if steps.evaluate is not None and len(test):
        with timer("evaluate"):
            evaluation = _evaluate_guest(ctx, job, model, data, X_train, X_test, pre)
            out_dir = inside(steps.evaluate.out_dir, ctx.job_id)
            run = _run_metadata(ctx, job, dataset.n_rows, size, data, model, timer)
            metrics = evaluation.write(out_dir, run)
            test_ids = _take(dataset.ids, rows).iloc[test].reset_index(drop=True)
            write_table(test_ids.assign(y=y[test], score=evaluation.test_scores), str(out_dir / TEST_SCORES))
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
    if evaluation is not None and (steps.export is not None or steps.score is not None):
        # the report again, now with every step's duration and the later scores' stability
        assert steps.evaluate is not None
        later = read_table(steps.score.sink, columns=["score"])["score"].dropna() if steps.score else None
        run = _run_metadata(ctx, job, dataset.n_rows, size, data, model, timer)
        metrics = evaluation.write(steps.evaluate.out_dir / ctx.job_id, run, later)
    return JobOutcome(ctx.job_id, size, metrics, report, model_id, scored, timer.seconds)


# --- host --------------------------------------------------------------------------------


def run_host(ctx: Context, party: PartyRuntime, params: dict[str, Any]) -> dict[str, Any]:
    """The host's side of a job the guest started; `params` is `job_params` without the
    guest's own part."""
    job = parse(JobConfig, params.get("spec"), f"job spec from '{ctx.guest}'")
    steps = job.steps
    dataset = party.dataset(job.datasets[ctx.name])
    _check_features(party, job, dataset)

    rows = None
    if steps.psi is not None:
        result = ecdh.host(ctx.child("psi"), dataset.ids, normalize_ids=_normalization(dataset),
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
        step = ctx.child("evaluate")
        if steps.evaluate.iv:  # this host's IV, by its own column names, stays here
            own = woe.host(step.child("iv"), data.X.iloc[data.train])
            if own.iv is not None:
                path = party.job_dir(ctx.job_id, "evaluate") / "iv.csv"
                write_table(iv_table(own.iv), str(path))
                seal(path)
                ctx.log.info("IV of this party's %d features: %s", len(own.iv), path)
        model.predict(step.child("train"), X_train)
        model.predict(step, X_test)

    bundle = ModelBundle(steps.train.algorithm, "host", model.part, list(dataset.X.columns), pre)
    if steps.export is not None:
        _export(ctx, party, job, bundle, {})
    if steps.score is not None:
        scorer = HostScorer(bundle, _feature_source(dataset))
        serve_partials(ctx.child("score"), scorer)
    return {"intersection_size": len(X)}


@dataclass
class _Evaluation:
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


def _evaluate_guest(ctx: Context, job: JobConfig, model: training.GuestModel, data: Aligned,
                    X_train: np.ndarray, X_test: np.ndarray, pre: PartyPreprocessor | None) -> _Evaluation:
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
        for host, found in hosts.items():  # in the host's column order, under no name
            anonymous = found.iv.set_axis([f"{host} #{i + 1}" for i in range(len(found.iv))])
            explanations[f"IV of {host}'s features (names stay with {host})"] = iv_table(anonymous)
    names = pre.feature_names_out_ if pre is not None else [str(c) for c in data.X.columns]
    coefficients = coefficients_table(model.part, names)
    if coefficients is not None:
        explanations[f"Coefficients of {ctx.name}'s features (after preprocessing)"] = coefficients
    train_scores = model.predict_proba(ev.child("train"), X_train)
    test_scores = model.predict_proba(ev, X_test)
    return _Evaluation(job, y_train, data.y[data.test], train_scores, test_scores, explanations)


def _run_metadata(ctx: Context, job: JobConfig, dataset_rows: int, intersection: int, data: Aligned,
                  model: training.GuestModel, timer: _Timer) -> dict[str, Any]:
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


# --- the steps both sides share ----------------------------------------------------------


def _normalization(dataset: Dataset) -> dict[str, Any] | None:
    """The dataset's id normalisation for PSI (the same on every party, or PSI refuses)."""
    norm = dataset.spec.id_normalize
    return None if norm is None else norm.model_dump()


def _pipeline(party: PartyRuntime, job: JobConfig) -> dict[str, Any] | None:
    """This party's preprocessing for its dataset of the job: run unless the job says
    ``preprocess: false`` or the party configures none."""
    if job.steps.preprocess is False:
        return None
    return party.config.preprocessing.get(job.datasets[party.name])


def _check_features(party: PartyRuntime, job: JobConfig, dataset: Dataset) -> None:
    """Before PSI: the columns suit the preprocessing this job will run, or, without one,
    training itself (numbers, nothing missing); errors name the party, dataset and column."""
    where = f"party '{party.name}', dataset '{dataset.name}'"
    spec = _pipeline(party, job)
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


def _preprocess(
    ctx: Context, party: PartyRuntime, job: JobConfig, data: Aligned
) -> tuple[PartyPreprocessor | None, np.ndarray, np.ndarray]:
    """Fit this party's own pipeline on its own training rows; replay it on the test rows."""
    X_train, X_test = data.X.iloc[data.train], data.X.iloc[data.test]
    spec = _pipeline(party, job)
    if spec is None:
        ctx.log.info("no preprocessing: training on the raw columns")
        return None, X_train.to_numpy(np.float64), X_test.to_numpy(np.float64)
    pre = PartyPreprocessor(config=spec).fit(X_train)
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
            scorer, step.source, step.sink, id_column=dataset.spec.id_columns[0], version=ctx.job_id,
            chunk_rows=step.chunk_rows, id_type=id_types(dataset.spec).get(dataset.spec.id_columns[0]),
            duplicates=dataset.spec.duplicates,
            on_progress=lambda n, s: ctx.progress(s.rows, s.total or 0, unit="rows", chunks=n),
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

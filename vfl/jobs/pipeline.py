"""The whole pipeline as one protocol: psi -> split -> preprocess -> train -> evaluate -> export
-> score, one guest step and one host step per stage (a module of `vfl.jobs` each).

The guest drives (`run_guest`); each host runs `run_host` when the guest's job reaches its
service and its policy allows it. A host reads its own data, preprocessing and model settings
from its own party config: the guest's job spec only names datasets, steps and the guest's
hyper-parameters. Every stage runs in a child context (`ctx.child("psi")`, ...), so its
messages never mix with another stage's.
"""

from __future__ import annotations

import copy
from typing import Any

from vfl.config import JobConfig
from vfl.connectors import read_table, write_table
from vfl.errors import DataError, ProtocolError
from vfl.jobs import evaluate, export, preprocess, psi, score, split, train
from vfl.jobs.common import TEST_SCORES, Aligned, JobOutcome, Timer, take
from vfl.parties import registry
from vfl.parties.config import parse
from vfl.parties.context import GUEST, Context
from vfl.parties.runtime import PartyRuntime
from vfl.serving.bundle import ModelBundle
from vfl.store.files import inside

REDACTED = "(kept by the guest)"


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


def run_guest(ctx: Context, party: PartyRuntime, job: JobConfig) -> JobOutcome:
    """The guest's side of the whole job; returns what it reports to the submitter."""
    steps, timer = job.steps, Timer()
    dataset = party.dataset(job.datasets[ctx.name])
    if dataset.y is None:
        raise DataError(f"the guest's dataset '{dataset.name}' declares no label column")
    preprocess.check_features(party, job, dataset)

    rows, size = None, dataset.n_rows
    if steps.psi is not None:
        with timer("psi"):
            result = psi.guest(ctx, dataset, steps.psi)
        if result.cardinality_only:
            return JobOutcome(ctx.job_id, result.size, {}, None, None, None, timer.seconds)
        rows, size = result.rows, result.size

    y = take(dataset.y, rows).to_numpy()
    train_rows, test_rows = split.guest(ctx, y, steps.split)
    data = Aligned(take(dataset.X, rows), y, train_rows, test_rows)

    with timer("preprocess"):
        pre, X_train, X_test = preprocess.run(ctx, party, job, data)
    with timer("train"):
        model = train.guest_fit(ctx.child("train"), steps.train, X_train, y[train_rows],
                                party.job_dir(ctx.job_id, "train"))

    metrics: dict[str, Any] = {}
    report = None
    evaluation = None
    if steps.evaluate is not None and len(test_rows):
        with timer("evaluate"):
            evaluation = evaluate.guest(ctx, job, model, data, X_train, X_test, pre)
            out_dir = inside(steps.evaluate.out_dir, ctx.job_id)
            run = evaluate.run_metadata(ctx, job, dataset.n_rows, size, data, model, timer)
            metrics = evaluation.write(out_dir, run)
            test_ids = take(dataset.ids, rows).iloc[test_rows].reset_index(drop=True)
            write_table(test_ids.assign(y=y[test_rows], score=evaluation.test_scores), str(out_dir / TEST_SCORES))
            report = str(out_dir / "report.html")

    bundle = ModelBundle(steps.train.algorithm, "guest", model.part, list(dataset.X.columns), pre)
    model_id = None
    if steps.export is not None:
        with timer("export"):
            model_id = export.run(ctx, party, job, bundle, metrics)

    scored = None
    if steps.score is not None:
        with timer("score"):
            scored = score.guest(ctx.child("score"), job, bundle, dataset, party.compute)
    if evaluation is not None and (steps.export is not None or steps.score is not None):
        # the report again, now with every step's duration and the later scores' stability
        assert steps.evaluate is not None
        later = read_table(steps.score.sink, columns=["score"])["score"].dropna() if steps.score else None
        run = evaluate.run_metadata(ctx, job, dataset.n_rows, size, data, model, timer)
        metrics = evaluation.write(steps.evaluate.out_dir / ctx.job_id, run, later)
    return JobOutcome(ctx.job_id, size, metrics, report, model_id, scored, timer.seconds)


def run_host(ctx: Context, party: PartyRuntime, params: dict[str, Any]) -> dict[str, Any]:
    """The host's side of a job the guest started; `params` is `job_params` without the
    guest's own part."""
    job = parse(JobConfig, params.get("spec"), f"job spec from '{ctx.guest}'")
    steps = job.steps
    dataset = party.dataset(job.datasets[ctx.name])
    preprocess.check_features(party, job, dataset)

    rows = None
    if steps.psi is not None:
        result = psi.host(ctx, party, dataset)
        if result.cardinality_only:
            return {"intersection_size": result.size}
        rows = result.rows
    X = take(dataset.X, rows)
    train_rows, test_rows = split.host(ctx, len(X))
    data = Aligned(X, None, train_rows, test_rows)

    pre, X_train, X_test = preprocess.run(ctx, party, job, data)
    model = train.host_fit(ctx.child("train"), steps.train, X_train, party,
                           party.job_dir(ctx.job_id, "train"))
    if steps.evaluate is not None and len(test_rows):
        evaluate.host(ctx, party, job, model, data, X_train, X_test)

    bundle = ModelBundle(steps.train.algorithm, "host", model.part, list(dataset.X.columns), pre)
    if steps.export is not None:
        export.run(ctx, party, job, bundle, {})
    if steps.score is not None:
        score.host(ctx.child("score"), bundle, dataset, party.compute)
    return {"intersection_size": len(X)}

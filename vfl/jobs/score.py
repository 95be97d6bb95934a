"""The score stage of a job: batch scoring of the guest's source through the trained parts,
each host answering with its contributions for the ids asked."""

from __future__ import annotations

from typing import Any

from vfl.config import JobConfig
from vfl.connectors import Dataset
from vfl.connectors.dataset import id_types
from vfl.jobs.common import feature_source
from vfl.parties.compute import Compute
from vfl.parties.context import Context
from vfl.serving.batch import score_batch
from vfl.serving.bundle import ModelBundle
from vfl.serving.scoring import GuestScorer, HostScorer
from vfl.serving.session import ContextHost, serve_partials


def guest(ctx: Context, job: JobConfig, bundle: ModelBundle, dataset: Dataset,
          compute: Compute) -> dict[str, Any]:
    """Ids (and guest features) from the step's source, scores to its sink; returns the counts."""
    step = job.steps.score
    assert step is not None
    hosts = [ContextHost(ctx, h) for h in ctx.hosts]
    scorer = GuestScorer(bundle, hosts, feature_source(dataset, compute))
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


def host(ctx: Context, bundle: ModelBundle, dataset: Dataset, compute: Compute) -> None:
    """Answer the guest's requests with this party's contributions until it is done."""
    serve_partials(ctx, HostScorer(bundle, feature_source(dataset, compute)))

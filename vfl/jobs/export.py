"""The export stage of a job: each party stores its own part under the shared model id."""

from __future__ import annotations

from typing import Any

from vfl.config import JobConfig
from vfl.jobs.common import headline
from vfl.parties.context import Context
from vfl.parties.runtime import PartyRuntime
from vfl.serving.bundle import ModelBundle


def run(ctx: Context, party: PartyRuntime, job: JobConfig, bundle: ModelBundle,
        metrics: dict[str, Any]) -> str:
    """Store this party's part of the model, version = the job id (promoted unless told not
    to); the same on the guest and every host. Returns the model id."""
    assert job.steps.export is not None
    model_id = job.steps.export.model_id
    store = party.model_store()
    if any(r.version == ctx.job_id for r in store.list(model_id)):
        ctx.log.info("model '%s' version '%s' was exported by an earlier attempt of this job",
                     model_id, ctx.job_id)  # a resumed job reaches the same model
    else:
        store.save(model_id, ctx.job_id, role=ctx.role, kind=bundle.algorithm, write=bundle.save,
                   peers=sorted(ctx.peers), metrics=headline(metrics))
    if job.steps.export.promote:
        store.promote(model_id, ctx.job_id)
    ctx.log.info("exported model '%s' version '%s'", model_id, ctx.job_id)
    return model_id

"""Start a job: all parties in this process (simulation) or across party services (gRPC)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from vfl.config import JobConfig, load_party_config
from vfl.errors import ConfigError
from vfl.jobs import JobOutcome, run_guest, run_host
from vfl.parties.context import ProgressEvent, new_job_id
from vfl.parties.local import simulate
from vfl.parties.runtime import PartyRuntime

log = logging.getLogger("vfl.runner")


def job_spec(job: JobConfig) -> dict[str, Any]:
    """What the guest sends to hosts: the steps and dataset names, never its local paths."""
    return job.model_dump(mode="json", exclude={"parties"})


def run_simulated(
    job: JobConfig, on_progress: Callable[[ProgressEvent], None] | None = None
) -> JobOutcome:
    """Every party's role in its own thread, each with its own config and data."""
    missing = {job.guest, *job.hosts} - set(job.parties)
    if missing:
        raise ConfigError(f"parties: no party config given for {sorted(missing)} (needed to simulate)")
    runtimes = {name: PartyRuntime(load_party_config(job.parties[name])) for name in job.roles}
    job = job.model_copy(update={"job_id": job.job_id or new_job_id(job.guest)})
    spec = job_spec(job)
    roles: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
        job.guest: (run_guest, {"party": runtimes[job.guest], "job": job})
    }
    for host in job.hosts:
        roles[host] = (run_host, {"party": runtimes[host], "params": spec})
    timeout = runtimes[job.guest].config.timeouts.message
    results = simulate(
        roles, job.roles, job_id=job.job_id, timeout=timeout,
        executor=runtimes[job.guest].executor, on_progress=on_progress,
    )
    outcome: JobOutcome = results[job.guest]
    return outcome

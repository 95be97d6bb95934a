"""Start a job: all parties in this process (simulation) or across party services (gRPC)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from vfl.config import JobConfig
from vfl.errors import ConfigError, PeerError
from vfl.jobs import JobOutcome, job_params, run_guest, run_host
from vfl.names import check_name
from vfl.parties import registry
from vfl.parties.config import PartyConfig, load_party_config
from vfl.parties.context import ProgressEvent, new_job_id
from vfl.parties.executor import start_in_background
from vfl.parties.federation import Federation, connect_federation
from vfl.parties.local import simulate
from vfl.parties.progress import ProgressDisplay, ProgressStatus
from vfl.parties.runtime import PartyRuntime
from vfl.parties.service import JobRuntime

log = logging.getLogger("vfl.runner")

JOB_PROTOCOL = "job"


def run_simulated(
    job: JobConfig, on_progress: Callable[[ProgressEvent], None] | None = None
) -> JobOutcome:
    """Run a job with every party simulated: each role in its own thread, with its own config
    and data, through the same code as across party services.

    Parameters
    ----------
    job : JobConfig
        The job (`load_job_config`); its `parties` names every party's config file.
    on_progress : callable or None, default None
        Gets every party's progress events; by default a `ProgressDisplay` shows them on
        stderr (pass `vfl.parties.progress.quiet` to show nothing).

    Returns
    -------
    JobOutcome
        What the guest gets back: intersection size, metrics, report path, model id.

    Raises
    ------
    ConfigError
        A party of the job has no config in `job.parties`, or a config is invalid.
    VflError
        Any party's failure (data, policy, protocol), re-raised in the caller.
    """
    missing = {job.guest, *job.hosts} - set(job.parties)
    if missing:
        raise ConfigError(f"parties: no party config given for {sorted(missing)} (needed to simulate)")
    start_in_background()  # the workers start while the parties load their data
    runtimes = {name: PartyRuntime(load_party_config(job.parties[name])) for name in job.roles}
    job = _with_id(job)
    host_params = registry.for_hosts(job_params(job))
    roles: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
        job.guest: (run_guest, {"party": runtimes[job.guest], "job": job})
    }
    for host in job.hosts:
        roles[host] = (run_host, {"party": runtimes[host], "params": host_params})
    timeout = runtimes[job.guest].config.timeouts.message
    with _shown(on_progress) as show:
        results = simulate(
            roles, job.roles, job_id=job.job_id, timeout=timeout,
            executor=runtimes[job.guest].executor, on_progress=show,
        )
    outcome: JobOutcome = results[job.guest]
    return outcome


def run_federated(
    job: JobConfig,
    party: PartyConfig,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    submit: bool | None = None,
    poll: float = 2.0,
) -> JobOutcome:
    """Run `job` with `party` (the guest) as the driver, every host on its own service.

    Parameters
    ----------
    job : JobConfig
        The job (`load_job_config`).
    party : PartyConfig
        The guest's own config (`load_party_config`).
    on_progress : callable or None, default None
        As in `run_simulated` (submitted: the guest's service's latest event every `poll`
        seconds).
    submit : bool or None, default None
        True sends the job to the guest's running service (``vfl serve``), which runs the
        guest's role there; False runs the guest's service embedded here for the job's
        duration, with the role in this thread; None submits if the service answers at
        ``party.listen``, else runs embedded.
    poll : float, default 2.0
        Seconds between status requests to a submitted job.

    Returns
    -------
    JobOutcome
        What the guest gets back: intersection size, metrics, report path, model id.

    Raises
    ------
    ConfigError
        `party` is not the job's guest.
    PeerError
        A host's service cannot be reached or refuses the job.
    VflError
        Any party's failure (data, policy, protocol).
    """
    if job.guest != party.name:
        raise ConfigError(f"job.guest is '{job.guest}' but the party config is '{party.name}'; "
                          "a job is started by its guest")
    job = _with_id(job)
    assert job.job_id is not None
    datasets = {name: [job.datasets[name]] for name in job.roles}
    if submit is None:
        submit = _service_answers(party)
        log.info("%s's service %s at %s: %s", party.name, "answers" if submit else "does not answer",
                 party.listen, "submitting the job to it" if submit else "running it embedded")
    with _shown(on_progress) as show:
        if submit:
            return _submit(job, party, datasets, show, poll)
        from vfl.serving.grpc_api import attach  # the embedded service serves models, too

        with connect_federation(party, parts=[attach]) as fed:
            assert fed.service is not None
            with fed.job(job.job_id, JOB_PROTOCOL, job_params(job), job.roles, datasets, show) as ctx:
                return run_guest(ctx, JobRuntime(fed.service.runtime, datasets[party.name]), job)


@contextlib.contextmanager
def _shown(on_progress: Callable[[ProgressEvent], None] | None) -> Iterator[Callable[[ProgressEvent], None]]:
    """The caller's progress callback, or a display on stderr for the run's duration."""
    if on_progress is not None:
        yield on_progress
        return
    with ProgressDisplay() as display:
        yield display


def _submit(job: JobConfig, party: PartyConfig, datasets: dict[str, list[str]],
            on_progress: Callable[[ProgressEvent], None], poll: float) -> JobOutcome:
    assert job.job_id is not None
    fed = Federation(party)
    try:
        fed.start_job(party.name, job.job_id, JOB_PROTOCOL, job_params(job), job.roles, datasets)
        shown: list[ProgressEvent] = []
        while True:
            info = fed.job_status(party.name, job.job_id)
            if info.done:
                break
            events = ProgressStatus.parse(party.name, job.job_id, info.progress)
            for event in events:
                if event not in shown:  # the status repeats every step's latest event
                    on_progress(event)
            shown = events
            time.sleep(poll)
        result = info.raise_for_state().result
    finally:
        fed.close()
    if not isinstance(result, dict):
        raise PeerError(f"job '{job.job_id}' on '{party.name}' returned no outcome")
    return JobOutcome.from_summary(result)


def _service_answers(party: PartyConfig) -> bool:
    fed = Federation(party)
    try:
        fed.health(party.name)
        return True
    except PeerError:
        return False
    finally:
        fed.close()


def _with_id(job: JobConfig) -> JobConfig:
    """The job with its id (a new one if it has none), checked before any party does work."""
    if job.job_id is None:
        return job.model_copy(update={"job_id": new_job_id(job.guest)})
    check_name(job.job_id, "job_id")
    return job

"""The job pipeline: one module per stage, each with the guest's step and the host's step.

``common`` (aligned rows, outcome, timer) -> ``psi`` -> ``split`` -> ``preprocess`` ->
``train`` (the registered algorithm) -> ``evaluate`` -> ``export`` -> ``score``;
``pipeline`` runs them in order as the party service's protocol ``job``.
"""

from vfl.jobs.common import TEST_SCORES, JobOutcome
from vfl.jobs.pipeline import REDACTED, job_params, job_protocol, run_guest, run_host

__all__ = ["REDACTED", "TEST_SCORES", "JobOutcome", "job_params", "job_protocol", "run_guest", "run_host"]

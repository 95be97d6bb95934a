"""What a party service exports to Prometheus, and whether it is ready for traffic.

One `ServiceMetrics` per service (its own `CollectorRegistry`, not prometheus_client's global
one, so several services in one process never mix). The service feeds it the events it already
sees: online requests (from serving's one place that also feeds the JSON ``/v1/metrics`` and
the audit log), jobs changing state, progress events of the job steps; what is a state rather
than an event (jobs now queued or running, mailbox bytes pending, the model versions served,
readiness) is read when Prometheus scrapes, through `watch`.

`Readiness` is the list of conditions a service must meet before it takes traffic (the service
started, the served models loaded; a registry adds its session). Liveness is ``/v1/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vfl.parties.context import ProgressEvent

log = logging.getLogger("vfl.metrics")

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
NO_VERSION = ""  # the version label of a request that failed before a version was chosen

ReadinessCheck = Callable[[], "str | None"]
"""A readiness condition: None when met, else why not (one line, no data)."""


class Readiness:
    """The conditions a service checks before it reports ready (``/v1/ready``, ``vfl health
    --ready``). Parts of the service add theirs with `add`."""

    def __init__(self) -> None:
        self._checks: dict[str, ReadinessCheck] = {}
        self._lock = threading.Lock()

    def add(self, name: str, check: ReadinessCheck) -> None:
        """Add (or replace) the condition `name`."""
        with self._lock:
            self._checks[name] = check

    def unmet(self) -> dict[str, str]:
        """Every condition not met now, by name, with its reason (empty: ready)."""
        with self._lock:
            checks = list(self._checks.items())
        reasons = {}
        for name, check in checks:
            try:
                reason = check()
            except Exception as exc:  # noqa: BLE001 - a failing check means "not ready", said once
                reason = f"{type(exc).__name__}: {exc}"
            if reason is not None:
                reasons[name] = reason
        return reasons


class ServiceMetrics:
    """The Prometheus metrics of one party service (see docs/serving.md, *Metrics*).

    Parameters
    ----------
    party : str
        The party's name (in ``vfl_service_info``; Prometheus tells services apart by their
        scrape targets).
    """

    def __init__(self, party: str) -> None:
        self.party = party
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("vfl_requests", "Online requests answered, failed ones included",
                                ["model", "version", "kind"], registry=r)
        self.latency = Histogram("vfl_request_seconds", "Latency of successful online requests",
                                 ["model", "version", "kind"], buckets=REQUEST_BUCKETS, registry=r)
        self.errors = Counter("vfl_request_errors", "Failed or refused online requests by error kind",
                              ["kind", "error"], registry=r)
        self.ids_scored = Counter("vfl_ids_scored", "Ids in successful online requests",
                                  ["model", "version", "kind"], registry=r)
        self.ids_missing = Counter("vfl_ids_missing", "Ids answered without a party's part, by that party",
                                   ["model", "version", "party"], registry=r)
        self.jobs_ended = Counter("vfl_jobs_ended", "Jobs of this service that ended, by final state",
                                  ["state"], registry=r)
        self.step_seconds = Histogram("vfl_step_seconds", "Duration of a job step (first to last progress report)",
                                      ["step", "unit"], buckets=STEP_BUCKETS, registry=r)
        self.epoch_seconds = Histogram("vfl_epoch_seconds", "Duration of one training epoch",
                                       ["step"], buckets=STEP_BUCKETS, registry=r)
        self._clock = _StepClock(self)

    # --- online requests ----------------------------------------------------------------
    def request(self, kind: str, model: str, version: str, seconds: float, n_ids: int,
                missing: Iterable[tuple[str, int]] = ()) -> None:
        """A successful online request of `kind` (``grpc``, ``http``, ``partials``) with `n_ids`
        ids; `missing`: (party, ids answered without that party's part)."""
        self.requests.labels(model, version, kind).inc()
        self.latency.labels(model, version, kind).observe(seconds)
        self.ids_scored.labels(model, version, kind).inc(n_ids)
        for party, count in missing:
            if count:
                self.ids_missing.labels(model, version, party).inc(count)

    def failure(self, kind: str, model: str, error: str) -> None:
        """A failed or refused online request; `model`: a served model's id, or "" for another."""
        self.requests.labels(model, NO_VERSION, kind).inc()
        self.errors.labels(kind, error).inc()

    # --- jobs ---------------------------------------------------------------------------
    def job_ended(self, job_id: str, state: str) -> None:
        self.jobs_ended.labels(state).inc()
        self._clock.end_job(job_id)

    def progress(self, event: ProgressEvent) -> None:
        """A job step's progress report: times steps and epochs."""
        self._clock.observe(event)

    # --- states read at scrape time -----------------------------------------------------
    def watch(self, collect: Callable[[], Iterator[Metric]]) -> None:
        """Add gauges computed when Prometheus scrapes (`collect` yields metric families)."""
        self.registry.register(_Collector(collect))

    def gauge(self, name: str, documentation: str, labels: list[str],
              values: Iterable[tuple[list[str], float]]) -> GaugeMetricFamily:
        """A gauge family for `watch`."""
        family = GaugeMetricFamily(name, documentation, labels=labels)
        for label_values, value in values:
            family.add_metric(label_values, value)
        return family


class _Collector(Collector):
    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        return self._collect()

    def describe(self) -> Iterable[Metric]:
        return ()  # computed families: nothing to check against other collectors up front


class _StepClock:
    """Step durations from progress events: a step runs from its first report to the one that
    says it is done (``done == total``), or to the end of its job. Epochs report their own
    duration (``seconds``)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._started: dict[tuple[str, str, str], tuple[float, float]] = {}  # key -> (first, last)
        self._lock = threading.Lock()

    def observe(self, event: ProgressEvent) -> None:
        step = event.step.split("/", 1)[0]  # "psi/partner" -> "psi": a bounded label
        unit = str(event.info.get("unit", ""))
        if unit == "epochs":
            seconds = event.info.get("seconds")
            if isinstance(seconds, int | float):
                self._metrics.epoch_seconds.labels(step).observe(float(seconds))
            return
        key, now = (event.job_id, step, unit), time.monotonic()
        with self._lock:
            first = self._started.get(key, (now, now))[0]
            if 0 < event.total <= event.done:
                self._started.pop(key, None)
            else:
                self._started[key] = (first, now)
                return
        self._metrics.step_seconds.labels(step, unit).observe(now - first)

    def end_job(self, job_id: str) -> None:
        with self._lock:
            ended = {k: v for k, v in self._started.items() if k[0] == job_id}
            for key in ended:
                del self._started[key]
        for (_, step, unit), (first, last) in ended.items():
            self._metrics.step_seconds.labels(step, unit).observe(last - first)


def exposition(metrics: ServiceMetrics) -> tuple[bytes, str]:
    """The registry in Prometheus's text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST


__all__ = ["Readiness", "ReadinessCheck", "ServiceMetrics", "exposition"]

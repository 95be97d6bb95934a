"""The Prometheus metrics of a party service: every metric exists and moves with the events it
counts, one registry per service, readiness conditions; then a real service (mutual TLS) whose
job, mailbox, step timings and readiness show in its own registry."""

from __future__ import annotations

import time

import pytest

from tests.parties import service_kit as kit
from vfl import __version__
from vfl.net import codec
from vfl.parties.context import ProgressEvent
from vfl.parties.metrics import Readiness, ServiceMetrics, exposition
from vfl.parties.service import PartyService


def value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_every_request_metric_moves_with_the_requests_it_counts():
    m = ServiceMetrics("bank")
    m.request("grpc", "credit", "v1", 0.004, 3, [("partner", 1), ("guest", 0)])
    m.request("grpc", "credit", "v1", 0.2, 2)
    m.request("http", "credit", "v1", 0.01, 1)
    m.failure("http", "credit", "DataError")
    m.failure("grpc", "", "PolicyError")

    assert value(m, "vfl_requests_total", model="credit", version="v1", kind="grpc") == 2
    assert value(m, "vfl_requests_total", model="credit", version="v1", kind="http") == 1
    assert value(m, "vfl_requests_total", model="credit", version="", kind="http") == 1
    assert value(m, "vfl_requests_total", model="", version="", kind="grpc") == 1
    assert value(m, "vfl_request_seconds_count", model="credit", version="v1", kind="grpc") == 2
    assert value(m, "vfl_request_seconds_sum", model="credit", version="v1", kind="grpc") == pytest.approx(0.204)
    assert value(m, "vfl_request_seconds_bucket", model="credit", version="v1", kind="grpc", le="0.005") == 1
    assert value(m, "vfl_request_seconds_bucket", model="credit", version="v1", kind="grpc", le="0.25") == 2
    assert value(m, "vfl_ids_scored_total", model="credit", version="v1", kind="grpc") == 5
    assert value(m, "vfl_ids_missing_total", model="credit", version="v1", party="partner") == 1
    assert m.registry.get_sample_value("vfl_ids_missing_total",
                                       {"model": "credit", "version": "v1", "party": "guest"}) is None
    assert value(m, "vfl_request_errors_total", kind="http", error="DataError") == 1
    assert value(m, "vfl_request_errors_total", kind="grpc", error="PolicyError") == 1


def test_steps_are_timed_from_first_to_last_report_and_epochs_by_their_own_seconds():
    m = ServiceMetrics("bank")
    m.progress(ProgressEvent("bank", "j1", "psi", 0, 100, {"unit": "points"}))
    time.sleep(0.05)
    m.progress(ProgressEvent("bank", "j1", "psi", 50, 100, {"unit": "points"}))
    assert value(m, "vfl_step_seconds_count", step="psi", unit="points") == 0  # not done yet
    m.progress(ProgressEvent("bank", "j1", "psi", 100, 100, {"unit": "points"}))
    assert value(m, "vfl_step_seconds_count", step="psi", unit="points") == 1
    assert 0.05 <= value(m, "vfl_step_seconds_sum", step="psi", unit="points") < 5

    m.progress(ProgressEvent("bank", "j1", "train", 1, 3, {"unit": "epochs", "seconds": 2.5}))
    m.progress(ProgressEvent("bank", "j1", "train", 2, 3, {"unit": "epochs", "seconds": 1.5}))
    assert value(m, "vfl_epoch_seconds_count", step="train") == 2
    assert value(m, "vfl_epoch_seconds_sum", step="train") == 4.0

    # a step without a known end (scoring of unknown size) ends with its job, at its last report
    m.progress(ProgressEvent("bank", "j1", "score", 10, 0, {"unit": "rows"}))
    m.progress(ProgressEvent("bank", "j1", "score", 20, 0, {"unit": "rows"}))
    assert value(m, "vfl_step_seconds_count", step="score", unit="rows") == 0
    m.job_ended("j1", "succeeded")
    assert value(m, "vfl_step_seconds_count", step="score", unit="rows") == 1
    assert value(m, "vfl_jobs_ended_total", state="succeeded") == 1


def test_gauges_are_read_at_each_scrape_and_registries_are_per_service():
    a, b = ServiceMetrics("bank"), ServiceMetrics("partner")
    pending = [10.0]
    a.watch(lambda: iter([a.gauge("vfl_mailbox_bytes_pending", "bytes", [], [([], pending[0])])]))
    assert value(a, "vfl_mailbox_bytes_pending") == 10
    pending[0] = 0
    assert value(a, "vfl_mailbox_bytes_pending") == 0
    a.request("grpc", "credit", "v1", 0.01, 1)
    assert value(b, "vfl_requests_total", model="credit", version="v1", kind="grpc") == 0
    assert b.registry.get_sample_value("vfl_mailbox_bytes_pending") is None
    text, content_type = exposition(a)
    assert content_type.startswith("text/plain") and b"vfl_requests_total{" in text


def test_readiness_lists_every_unmet_condition_with_its_reason():
    ready = Readiness()
    assert ready.unmet() == {}
    ready.add("models", lambda: "model 'credit' version 'v1' not loaded yet")
    ready.add("registry", lambda: None)

    def broken() -> str | None:
        raise OSError("session lost")

    ready.add("store", broken)
    assert ready.unmet() == {"models": "model 'credit' version 'v1' not loaded yet",
                             "store": "OSError: session lost"}
    ready.add("models", lambda: None)  # replaced
    assert ready.unmet() == {"store": "OSError: session lost"}


def test_a_service_exports_its_jobs_mailbox_steps_and_readiness(tmp_path):
    fed = kit.Federation(tmp_path, ["bank", "partner"])
    fed.write_config("partner")
    service = PartyService(fed.config("partner"))
    assert service.readiness.unmet() == {"service": "not serving yet"}
    with service:
        m = service.metrics
        assert value(m, "vfl_ready") == 1
        assert value(m, "vfl_service_info", party="partner", vfl_version=__version__) == 1
        job = service.open_job("bank", "j-metrics", "test-rounds", {"rounds": 1},
                               {"bank": "guest", "partner": "host"}, {})
        assert value(m, "vfl_jobs", state="queued") == 1
        payload = codec.encode("z" * 1000, 1 << 20)
        job.mailbox.put("bank", "j-metrics/-/x", payload)
        assert value(m, "vfl_mailbox_bytes_pending") == len(payload) > 1000
        with service.lifecycle(job, {}) as ctx:
            assert value(m, "vfl_jobs", state="running") == 1
            assert value(m, "vfl_jobs", state="queued") == 0
            ctx.child("psi").progress(0, 10, unit="points")
            ctx.child("psi", "partner").progress(10, 10, unit="points")
            assert ctx.recv("bank", "x") == "z" * 1000
            assert value(m, "vfl_mailbox_bytes_pending") == 0
        assert value(m, "vfl_jobs", state="running") == 0
        assert value(m, "vfl_jobs_ended_total", state="succeeded") == 1
        assert value(m, "vfl_step_seconds_count", step="psi", unit="points") == 1
        service.readiness.add("registry", lambda: "registry session lost")
        assert value(m, "vfl_ready") == 0


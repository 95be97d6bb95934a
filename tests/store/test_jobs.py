"""Job records in the party's store: states, timestamps, restart recovery, claims."""

from __future__ import annotations

import time

import pytest

from vfl.store.jobs import INTERRUPTED, JobClaimedError, JobStore


def test_job_lifecycle_is_recorded_with_timestamps(tmp_path):
    store = JobStore.for_store(tmp_path / "store")
    store.create("j1", "job", "host", "bank", {"bank": "guest", "partner": "host"})
    queued = store.get("j1")
    assert queued is not None and queued.state == "queued" and queued.started_at is None
    store.set_state("j1", "running")
    store.set_state("j1", "failed", "PeerError: peer 'bank' went away")
    record = store.get("j1")
    assert record is not None
    assert record.state == "failed" and record.error == "PeerError: peer 'bank' went away"
    assert record.created_at <= record.started_at <= record.finished_at <= time.time()
    assert record.parties == {"bank": "guest", "partner": "host"} and record.peer == "bank"
    assert (tmp_path / "store" / "jobs.sqlite").exists()
    store.close()


def test_restart_marks_unfinished_jobs_failed(tmp_path):
    store = JobStore.for_store(tmp_path)
    for job_id, state in (("queued", None), ("running", "running"), ("done", "succeeded")):
        store.create(job_id, "ping", "host", "bank", {"bank": "guest", "partner": "host"})
        if state:
            store.set_state(job_id, state)
    store.close()
    reopened = JobStore.for_store(tmp_path)  # as a restarted service does
    assert sorted(reopened.mark_interrupted()) == ["queued", "running"]
    states = {r.job_id: (r.state, r.error) for r in reopened.recent()}
    assert states == {"queued": ("failed", INTERRUPTED), "running": ("failed", INTERRUPTED),
                      "done": ("succeeded", None)}
    assert reopened.mark_interrupted() == []
    reopened.close()


def test_any_sqlalchemy_url(tmp_path):
    store = JobStore.for_store(tmp_path / "unused", url=f"sqlite:///{tmp_path / 'elsewhere.db'}")
    store.create("j", "ping", "guest", "bank", {"bank": "guest", "partner": "host"})
    assert store.get("j") is not None and (tmp_path / "elsewhere.db").exists()
    assert not (tmp_path / "unused").exists()
    store.close()


def test_replicas_sharing_a_store_claim_each_job_once_and_recover_only_their_own(tmp_path):
    """Two replicas on one job database: a job recorded by one cannot be recorded by the other
    (the claim names the holder); a restarted replica fails only the jobs it had claimed."""
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    a, b = JobStore(url, replica="10.0.0.1:50051"), JobStore(url, replica="10.0.0.2:50051")
    a.create("on-a", "ping", "host", "bank", {"bank": "guest", "partner": "host"})
    b.create("on-b", "ping", "host", "bank", {"bank": "guest", "partner": "host"})
    with pytest.raises(JobClaimedError, match="'on-a' is already claimed by 10.0.0.1:50051"):
        b.create("on-a", "ping", "host", "bank", {"bank": "guest", "partner": "host"})
    assert b.claimed_by("on-a") == "10.0.0.1:50051" and b.claimed_by("unknown") is None
    b.close()
    restarted = JobStore(url, replica="10.0.0.2:50051")
    assert restarted.mark_interrupted() == ["on-b"]
    assert restarted.get("on-a").state == "queued"  # still the other replica's, untouched
    restarted.restart("on-b")  # a failed job runs again, claimed by the replica resuming it
    with pytest.raises(JobClaimedError, match="already running again on 10.0.0.2:50051"):
        a.restart("on-b")
    a.close()
    restarted.close()

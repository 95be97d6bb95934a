"""What an adversarial review of live party services tried, against three `vfl serve` processes
with real mutual TLS: names that would become paths outside the store, a host cancelling the
guest's job, a peer flooding a job's mailbox, and a host's failure reason reaching the guest.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from tests.parties import service_kit as kit
from vfl.config import JobConfig
from vfl.errors import PeerError, PolicyError, ProtocolError, UnsafeNameError
from vfl.parties.federation import connect_federation
from vfl.parties.grpc_channel import PeerClient
from vfl.parties.proto import vfl_pb2 as pb
from vfl.runner import run_federated

THREE = {"bank": "guest", "partner": "host", "other": "host"}
PEER_BYTES, JOB_BYTES = 8 << 20, 12 << 20  # the partner's mailbox limits in this module
UNSAFE_IDS = ["..", ".", "a\x00b", "/tmp/vfl-escape", "../escape", "ｐａｒｔｎｅｒ", "jоb-cyrillic-o",
              "x" * 129, ""]


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    top = tmp_path_factory.mktemp("refusals")
    (top / "logs").mkdir()
    f = kit.Federation(top / "fed", ["bank", "partner", "other"])
    f.top = top
    f.write_config("bank")
    f.write_config("other")
    f.write_config("partner", mailbox={"peer_bytes": PEER_BYTES, "job_bytes": JOB_BYTES})
    return f


@pytest.fixture(scope="module")
def served(fed):
    procs = {}
    try:
        for name in ("partner", "other", "bank"):
            procs[name] = kit.Served(fed.root / name / "party.yaml", fed.ports[name],
                                     fed.top / "logs" / f"{name}.log")
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def _wait_running(client, party: str, job_id: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if client.job_status(party, job_id).progress:
                return
        except PeerError:
            pass  # not started there yet
        assert time.monotonic() < deadline, f"job '{job_id}' never got going on '{party}'"
        time.sleep(0.1)


# --- 1. names that become paths ----------------------------------------------------------------


def test_unsafe_job_ids_are_refused_everywhere_and_nothing_outside_the_store_changes(fed, served):
    before = kit.tree_state(fed.top, skip=(fed.top / "logs",))
    # gRPC, as the probe sent it: the bank (a valid peer) starts jobs under unsafe ids on the
    # partner (a host) and on its own service (the guest running the whole pipeline)
    for target in ("partner", "bank"):
        channel, stub = kit.party_stub(fed, "bank", target)
        for job_id in UNSAFE_IDS:
            request = pb.StartJobRequest(job_id=job_id, sender="bank", protocol="job",
                                         roles={"bank": "guest", "partner": "host"})
            with pytest.raises(grpc.RpcError) as err:
                stub.StartJob(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, job_id
            assert "job_id" in err.value.details() and "not a safe name" in err.value.details()
            for method in (stub.GetJob, stub.CancelJob):
                with pytest.raises(grpc.RpcError) as err:
                    method(pb.JobRef(job_id=job_id, sender="bank"), timeout=10)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        channel.close()
    # the Python API, before anything is sent
    job = JobConfig.model_validate({"guest": "bank", "hosts": ["partner"],
                                    "datasets": {"bank": "d", "partner": "d"},
                                    "steps": {"export": {"model_id": "credit"}}})
    with connect_federation(fed.config("bank"), embedded=False) as client:
        for job_id in UNSAFE_IDS:
            with pytest.raises(UnsafeNameError, match="job_id"):
                client.start_job("partner", job_id, "job", {}, THREE, {})
    with pytest.raises(UnsafeNameError, match="job_id"):  # model_copy skips validation; the API does not
        run_federated(job.model_copy(update={"job_id": ".."}), fed.config("bank"), submit=True)
    # the CLI
    for argv in (["jobs", "--config", str(fed.root / "bank" / "party.yaml"), "cancel", ".."],
                 ["models", "--config", str(fed.root / "bank" / "party.yaml"), "delete", "credit", ".."]):
        proc = subprocess.run([sys.executable, "-m", "vfl.cli", *argv], capture_output=True, text=True,
                              cwd=str(kit.REPO), timeout=120)
        assert proc.returncode == 2 and "is not a safe name" in proc.stderr, proc.stderr
        assert ("job_id" if argv[0] == "jobs" else "version") in proc.stderr
    after = kit.tree_state(fed.top, skip=(fed.top / "logs",))
    assert after == before  # nothing created, changed or deleted, in the stores or around them
    assert not Path("/tmp/vfl-escape").exists()


# --- 2. only the guest cancels ------------------------------------------------------------------


def test_a_host_cannot_cancel_the_guests_job_but_the_guest_can(fed, served):
    with connect_federation(fed.config("bank"), embedded=False) as bank:
        bank.start_job("bank", "cancel-probe", "test-rounds", {"rounds": 10_000, "pause": 0.02}, THREE, {})
        _wait_running(bank, "partner", "cancel-probe")
        _wait_running(bank, "other", "cancel-probe")
        with connect_federation(fed.config("partner"), embedded=False) as partner:
            for target in ("bank", "other"):  # the guest's service, and another host's
                with pytest.raises(PolicyError, match="only the guest 'bank' of job 'cancel-probe'"):
                    partner.cancel_job(target, "cancel-probe")
        time.sleep(0.5)
        for party in ("bank", "partner", "other"):
            assert bank.job_status(party, "cancel-probe").state == "running", party
        assert bank.cancel_job("bank", "cancel-probe").state == "cancelled"  # the guest's own operator
        for party in ("partner", "other"):
            assert bank.wait_job(party, "cancel-probe", 15, poll=0.1).state in ("cancelled", "failed")
    assert served["bank"].log().count("may cancel it") == 1  # the refusal is logged, once


# --- 6. a bounded mailbox -----------------------------------------------------------------------


def test_a_peer_flooding_a_jobs_mailbox_fails_the_job_naming_peer_and_tag(fed, served):
    junk = b"\x00" * (5 << 20)
    with connect_federation(fed.config("bank"), embedded=False) as bank:
        bank.start_job("bank", "flood", "test-rounds", {"rounds": 10_000, "pause": 0.02}, THREE, {})
        _wait_running(bank, "partner", "flood")
        flooder = PeerClient(fed.config("bank"), "partner", f"127.0.0.1:{fed.ports['partner']}")
        try:
            assert flooder.send("flood", "flood/-/unread-1", junk)  # 5 MiB pending: within 8 MiB
            with pytest.raises(ProtocolError, match="unread-2") as err:
                flooder.send("flood", "flood/-/unread-2", junk)  # 10 MiB: over the per-peer bound
        finally:
            flooder.close()
        assert "RESOURCE_EXHAUSTED" not in str(err.value) and f"{PEER_BYTES} bytes per peer" in str(err.value)
        info = bank.wait_job("partner", "flood", 15, poll=0.1)
        assert info.state == "failed" and "MailboxFullError" in info.error
        assert "peer 'bank'" in info.error and "'flood/-/unread-2'" in info.error
        assert bank.wait_job("bank", "flood", 15, poll=0.1).state == "failed"  # told by the partner


def test_the_mailbox_bound_also_holds_per_job_across_peers(fed, served):
    junk = b"\x00" * (7 << 20)
    with connect_federation(fed.config("bank"), embedded=False) as bank:
        bank.start_job("bank", "flood-two", "test-rounds", {"rounds": 10_000, "pause": 0.02}, THREE, {})
        _wait_running(bank, "partner", "flood-two")
        address = f"127.0.0.1:{fed.ports['partner']}"
        first = PeerClient(fed.config("bank"), "partner", address)
        second = PeerClient(fed.config("other"), "partner", address)
        try:
            first.send("flood-two", "flood-two/-/a", junk)  # 7 MiB of 'bank'
            with pytest.raises(ProtocolError, match=f"{JOB_BYTES} bytes per job"):
                second.send("flood-two", "flood-two/-/b", junk)  # 7 MiB of 'other': 14 MiB in the job
        finally:
            first.close()
            second.close()
        info = bank.wait_job("partner", "flood-two", 15, poll=0.1)
        assert info.state == "failed" and "peer 'other'" in info.error and "'flood-two/-/b'" in info.error


# --- 8. the host's own reason -------------------------------------------------------------------


def test_the_guest_reports_the_hosts_own_reason_not_a_transport_code(fed, served):
    with connect_federation(fed.config("bank"), embedded=False) as bank:
        bank.start_job("bank", "host-refuses", "test-host-refuses", {"reason": "reason-42"},
                       {"bank": "guest", "partner": "host"}, {})
        info = bank.wait_job("bank", "host-refuses", 30, poll=0.1)
        assert info.state == "failed"
        assert "reason-42" in info.error and "partner" in info.error
        assert "NOT_FOUND" not in info.error and "failed sending" not in info.error
        # and a message sent after the host's role ended gets the host's reason back, too
        late = PeerClient(fed.config("bank"), "partner", f"127.0.0.1:{fed.ports['partner']}")
        try:
            with pytest.raises(PeerError) as err:
                late.send("host-refuses", "host-refuses/-/x", b"late")
        finally:
            late.close()
        assert "'partner' failed its role of job 'host-refuses'" in str(err.value)
        assert "reason-42" in str(err.value) and "NOT_FOUND" not in str(err.value)


def test_a_hosts_failure_on_its_own_data_reaches_the_guest_redacted(fed, served):
    with connect_federation(fed.config("bank"), embedded=False) as bank:
        bank.start_job("bank", "host-data", "test-data-error", {"secret": "4111-1111"},
                       {"bank": "guest", "partner": "host"}, {})
        # the guest's job ends after it has started the partner's role: only then ask the partner
        assert bank.wait_job("bank", "host-data", 30, poll=0.1).state == "failed"
        assert bank.wait_job("partner", "host-data", 30, poll=0.1).state == "failed"
        late = PeerClient(fed.config("bank"), "partner", f"127.0.0.1:{fed.ports['partner']}")
        try:
            with pytest.raises(PeerError) as err:
                late.send("host-data", "host-data/-/x", b"late")
        finally:
            late.close()
        assert "the role of 'partner' failed on its own data" in str(err.value)
        assert "4111" not in str(err.value) and "NOT_FOUND" not in str(err.value)

"""The gRPC channel between real party services on loopback (mutual TLS, in this process).

Cross-process behaviour (separate `vfl serve` processes, killing one) is in test_service.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.parties import service_kit as kit
from vfl.errors import JobCancelledError, PeerError, PolicyError, ProtocolError
from vfl.parties.federation import connect_federation
from vfl.parties.grpc_channel import CHUNK_BYTES, PeerClient
from vfl.parties.service import PartyService

ROLES = {"bank": "guest", "partner": "host"}


@pytest.fixture()
def fed(tmp_path):
    f = kit.Federation(tmp_path, ["bank", "partner"])
    f.write_config("bank")
    f.write_config("partner")
    return f


@pytest.fixture()
def partner(fed):
    service = PartyService(fed.config("partner")).start()
    yield service
    service.stop()


def test_protocol_runs_unchanged_over_grpc(fed, partner):
    with connect_federation(fed.config("bank")) as bank:
        with bank.job("j-rounds", "test-rounds", {"rounds": 5, "pause": 0}, ROLES, {}) as ctx:
            result = kit.rounds(ctx, None, {"rounds": 5})
        assert result == {"total": 2 * sum(range(5))}
        assert bank.wait_job("partner", "j-rounds", 10).state == "succeeded"
        assert bank.job_status("bank", "j-rounds").state == "succeeded"


def test_multi_chunk_array_arrives_intact(fed, partner):
    n = (3 * CHUNK_BYTES) // 8 + 12345  # four chunks, the last one partial
    with connect_federation(fed.config("bank")) as bank:
        with bank.job("j-digest", "test-digest", {"n": n}, ROLES, {}) as ctx:
            out = kit.digest(ctx, None, {"n": n, "seed": 7})
    assert out["answers"]["partner"] == {"sha256": out["expected"], "shape": [n], "dtype": "float64"}


def test_retried_message_is_delivered_once(fed, partner):
    job = partner.open_job("bank", "j-dup", "ping", {}, ROLES, {})
    client = PeerClient(fed.config("bank"), "partner", fed.config("bank").peers["partner"].address)
    try:
        payload = np.arange(10).tobytes()
        assert client.send("j-dup", "j-dup/-/x", payload, message_id="m-1") is True
        assert client.send("j-dup", "j-dup/-/x", payload, message_id="m-1") is False
        assert client.send("j-dup", "j-dup/-/x", b"second", message_id="m-2") is True
        assert job.mailbox.get("bank", "j-dup/-/x", 1) == payload
        assert job.mailbox.get("bank", "j-dup/-/x", 1) == b"second"
        with pytest.raises(TimeoutError):
            job.mailbox.get("bank", "j-dup/-/x", 0.2)
    finally:
        client.close()


def test_send_retries_until_the_peer_comes_up(fed):
    late = PartyService(fed.config("partner"))
    job = late.open_job("bank", "j-late", "ping", {}, ROLES, {})
    starter = threading.Timer(1.0, late.start)
    starter.start()
    client = PeerClient(fed.config("bank"), "partner", fed.config("bank").peers["partner"].address)
    try:
        t = time.monotonic()
        assert client.send("j-late", "j-late/-/x", b"hello")
        assert time.monotonic() - t >= 0.9
        assert job.mailbox.get("bank", "j-late/-/x", 1) == b"hello"
    finally:
        starter.join()
        client.close()
        late.stop()


def test_unreachable_peer_gives_up_after_connect_timeout_naming_peer_and_step(fed):
    client = PeerClient(fed.config("bank"), "partner", fed.config("bank").peers["partner"].address)
    t = time.monotonic()
    with pytest.raises(PeerError, match=r"peer 'partner' .* unreachable while sending 'j-x/epoch/3/grad'"):
        client.send("j-x", "j-x/epoch/3/grad", b"data")
    assert 2.9 < time.monotonic() - t < 6  # timeouts.connect is 3 s in these configs
    client.close()


def test_message_for_unknown_job_is_refused(fed, partner):
    client = PeerClient(fed.config("bank"), "partner", fed.config("bank").peers["partner"].address)
    with pytest.raises(PeerError, match="job 'nope' is not running on 'partner'"):
        client.send("nope", "nope/-/x", b"data")
    client.close()


def test_oversized_message_is_refused_before_buffering(fed):
    fed.write_config("partner", max_message_bytes=1 << 16)
    with PartyService(fed.config("partner")) as small:
        small.open_job("bank", "j-big", "ping", {}, ROLES, {})
        client = PeerClient(fed.config("bank"), "partner", fed.config("bank").peers["partner"].address)
        with pytest.raises(ProtocolError, match="exceeds the limit of 65536 bytes"):
            client.send("j-big", "j-big/-/x", bytes(1 << 17))
        client.close()


def test_policy_refusal_reaches_the_guest_as_policy_error(fed):
    fed.write_config("partner", policy={"allow": [{"peers": ["bank"], "protocols": ["ping"]}]})
    with PartyService(fed.config("partner")), connect_federation(fed.config("bank")) as bank:
        with pytest.raises(PolicyError, match="policy of 'partner' does not allow peer 'bank' to start "
                                              "protocol 'test-rounds'"):
            with bank.job("j-refused", "test-rounds", {"rounds": 1}, ROLES, {}):
                pytest.fail("the job must not start")
        assert bank.job_status("bank", "j-refused").state == "failed"
        with pytest.raises(PeerError, match="has no job 'j-refused'"):
            bank.job_status("partner", "j-refused")


def test_failing_host_releases_the_waiting_guest_at_once(fed, partner):
    with connect_federation(fed.config("bank")) as bank:
        t = time.monotonic()
        with pytest.raises(PeerError, match="partner"):
            # the host reads a dataset it does not have: it fails and tells the guest
            with bank.job("j-fail", "test-dataset", {"dataset": "missing"}, ROLES, {}) as ctx:
                ctx.recv("partner", "rows")
        assert time.monotonic() - t < 2.5
        info = bank.wait_job("partner", "j-fail", 10)
        assert info.state == "failed" and "dataset" in (info.error or "")
        assert bank.job_status("bank", "j-fail").state == "failed"


def test_host_that_disappears_fails_the_guest_naming_it(fed):
    host = PartyService(fed.config("partner")).start()
    with connect_federation(fed.config("bank")) as bank:
        with pytest.raises(PeerError, match="peer 'partner'") as err:
            with bank.job("j-gone", "test-rounds", {"rounds": 1000, "pause": 0.05}, ROLES, {}) as ctx:
                threading.Timer(0.5, host.stop).start()
                kit.rounds(ctx, None, {"rounds": 1000})
        assert "round/" in str(err.value)  # the step it was at
        assert bank.job_status("bank", "j-gone").state == "failed"


def test_cancel_stops_both_roles(fed, partner):
    with connect_federation(fed.config("bank")) as bank:
        info = bank.start_job("bank", "j-cancel", "test-rounds", {"rounds": 1000, "pause": 0.05}, ROLES, {})
        assert info.state in ("queued", "running")
        time.sleep(0.5)
        assert bank.cancel_job("bank", "j-cancel").state == "cancelled"
        assert bank.wait_job("partner", "j-cancel", 10).state == "cancelled"
        with pytest.raises(JobCancelledError):
            bank.job_status("bank", "j-cancel").raise_for_state()


def test_job_submitted_to_own_service_runs_guest_role_there(fed, partner):
    with connect_federation(fed.config("bank")) as bank:
        info = bank.run("j-run", "ping", {}, ROLES, {}, timeout=30)
        assert info.result == {"pong": {"partner": True}}
        assert info.role == "guest" and info.peer == "bank"
        assert bank.wait_job("partner", "j-run", 10).peer == "bank"


def test_role_reads_only_the_datasets_its_job_was_approved_for(fed, tmp_path):
    for name in ("features", "secret"):
        (tmp_path / f"{name}.csv").write_text("id,x\n1,0.5\n2,0.25\n3,0.125\n")
    fed.write_config("partner", datasets={
        name: {"uri": str(tmp_path / f"{name}.csv"), "id_column": "id"} for name in ("features", "secret")
    })
    with PartyService(fed.config("partner")), connect_federation(fed.config("bank")) as bank:
        with bank.job("j-ok", "test-dataset", {"dataset": "features"}, ROLES,
                      {"partner": ["features"]}) as ctx:
            assert kit.read_dataset(ctx, None, {}) == {"partner": 3}
        # approved for "features", but the guest's parameters point the role at "secret"
        with pytest.raises(PeerError, match=r"approved for datasets \['features'\] of 'partner', not 'secret'"):
            with bank.job("j-sneaky", "test-dataset", {"dataset": "secret"}, ROLES,
                          {"partner": ["features"]}) as ctx:
                kit.read_dataset(ctx, None, {})
        assert "PolicyError" in (bank.wait_job("partner", "j-sneaky", 10).error or "")


def test_plaintext_service_trusts_only_configured_peer_names(fed):
    plain = {"tls": None, "insecure": True, "policy": {"allow": [{}], "allow_insecure": True}}
    fed.write_config("partner", **plain)
    fed.write_config("bank", **plain)
    with pytest.warns(UserWarning, match="PLAINTEXT"):
        host = PartyService(fed.config("partner")).start()
    try:
        with pytest.warns(UserWarning, match="PLAINTEXT"), connect_federation(fed.config("bank")) as bank:
            assert bank.health("partner")["insecure"] is True
            assert bank.run("j-plain", "ping", {}, ROLES, {}, timeout=30).result == {"pong": {"partner": True}}
        stranger = PeerClient(fed.config("bank").model_copy(update={"name": "mallory"}), "partner",
                              fed.config("bank").peers["partner"].address)
        with pytest.raises(PeerError, match="'mallory' is not a configured peer of 'partner'"):
            stranger.health()
        stranger.close()
    finally:
        host.stop()


def test_peers_see_neither_the_guests_result_nor_data_quoted_in_errors(fed, partner):
    partner_view = PeerClient(fed.config("partner"), "bank", f"127.0.0.1:{fed.ports['bank']}")
    try:
        with connect_federation(fed.config("bank")) as bank:
            bank.run("j-mine", "ping", {}, ROLES, {}, timeout=30)
            assert bank.job_status("bank", "j-mine").result == {"pong": {"partner": True}}
            assert partner_view.get_job("j-mine").result is None  # a party, not the submitter
            with pytest.raises(PeerError) as err:
                bank.run("j-bad", "test-data-error", {"secret": 4711}, ROLES, {}, timeout=30)
            assert "DataError" in str(err.value) and "4711" not in str(err.value)
            seen = bank.wait_job("partner", "j-bad", 10).error or ""
            assert seen.startswith("DataError") and "4711" not in seen
        # the partner's own store keeps the whole message for its operator
        assert "customer 4711" in (partner.jobs.get("j-bad").error or "")
    finally:
        partner_view.close()

"""Acceptance of the party service with real `vfl serve` OS processes on loopback and real mTLS:
who may connect, what the policy refuses, a killed partner, a 200 MB array, restarts.
"""

from __future__ import annotations

import subprocess
import sys
import time

import grpc
import pytest

from tests.parties import service_kit as kit
from vfl.crypto.tls import create_ca, issue_party_cert
from vfl.errors import PeerError, PolicyError
from vfl.net.status import PeerUnreachableError
from vfl.parties.federation import connect_federation
from vfl.parties.grpc_channel import PeerClient
from vfl.parties.proto import vfl_pb2 as pb
from vfl.parties.proto import vfl_pb2_grpc as pb_grpc
from vfl.store.jobs import JobStore

ROLES = {"bank": "guest", "partner": "host"}
PARTNER_POLICY = {
    "allow": [{"peers": ["bank"], "protocols": ["ping", "test-rounds", "test-digest"],
               "datasets": ["features"]}],
    "max_concurrent_jobs": 2,
}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    root = tmp_path_factory.mktemp("federation")
    f = kit.Federation(root, ["bank", "partner", "other"])
    (root / "features.csv").write_text("id,x\n" + "".join(f"{i},{i / 10}\n" for i in range(50)))
    f.write_config("bank")
    f.write_config("other")
    f.write_config("partner", policy=PARTNER_POLICY,
                   datasets={"features": {"uri": str(root / "features.csv"), "id_column": "id"}})
    return f


@pytest.fixture(scope="module")
def partner(fed):
    served = kit.Served(fed.root / "partner" / "party.yaml", fed.ports["partner"],
                        fed.root / "partner" / "serve.log")
    yield served
    served.stop()


def _stub(fed, address: str, ca: bytes, cert: bytes | None = None, key: bytes | None = None,
          name: str = "partner"):
    creds = grpc.ssl_channel_credentials(ca, key, cert)
    channel = grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", name)])
    return channel, pb_grpc.PartyStub(channel)


def _files(folder, name):
    return ((folder / "ca.pem").read_bytes(), (folder / f"{name}.pem").read_bytes(),
            (folder / f"{name}.key").read_bytes())


def test_configured_peer_with_valid_certificate_is_served(fed, partner):
    with connect_federation(fed.config("bank"), embedded=False) as bank:
        assert bank.health("partner") == {"party": "partner", "version": "0.1.0", "running_jobs": 0,
                                          "insecure": False, "compute": kit.LOCAL_COMPUTE}


def test_client_without_certificate_is_refused(fed, partner):
    ca = (fed.certs / "ca.pem").read_bytes()
    channel, stub = _stub(fed, f"127.0.0.1:{fed.ports['partner']}", ca)
    with pytest.raises(grpc.RpcError) as err:
        stub.Health(pb.HealthRequest(sender="bank"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
    channel.close()
    plain = grpc.insecure_channel(f"127.0.0.1:{fed.ports['partner']}")
    with pytest.raises(grpc.RpcError) as err:
        pb_grpc.PartyStub(plain).Health(pb.HealthRequest(sender="bank"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    plain.close()


def test_certificate_from_another_ca_is_refused(fed, partner, tmp_path):
    create_ca(tmp_path)  # a rogue CA issuing a certificate in the bank's name
    issue_party_cert(tmp_path, "bank")
    _, cert, key = _files(tmp_path, "bank")
    channel, stub = _stub(fed, f"127.0.0.1:{fed.ports['partner']}", (fed.certs / "ca.pem").read_bytes(),
                          cert, key)
    with pytest.raises(grpc.RpcError) as err:
        stub.Health(pb.HealthRequest(sender="bank"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


def test_valid_certificate_claiming_another_party_is_refused(fed, partner):
    ca, cert, key = _files(fed.certs, "other")  # "other" is a configured peer of the partner
    channel, stub = _stub(fed, f"127.0.0.1:{fed.ports['partner']}", ca, cert, key)
    for call in (
        lambda: stub.Health(pb.HealthRequest(sender="bank"), timeout=5),
        lambda: stub.StartJob(pb.StartJobRequest(job_id="spoof", sender="bank", protocol="ping",
                                                 roles=ROLES), timeout=5),
        lambda: stub.Send(iter([pb.Chunk(job_id="spoof", sender="bank", key="spoof/-/x",
                                         message_id="m", index=0, total=1, total_bytes=1,
                                         data=b"x")]), timeout=5),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "claims to come from 'bank' but the certificate identifies 'other'" in err.value.details()
    channel.close()
    assert "refused" in partner.log()


def test_certificate_of_a_party_that_is_not_a_peer_is_refused(fed, partner):
    issue_party_cert(fed.certs, "mallory")  # signed by the right CA, but not in partner.yaml
    ca, cert, key = _files(fed.certs, "mallory")
    channel, stub = _stub(fed, f"127.0.0.1:{fed.ports['partner']}", ca, cert, key)
    with pytest.raises(grpc.RpcError) as err:
        stub.Health(pb.HealthRequest(sender="mallory"), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'mallory' is not a configured peer of 'partner'" in err.value.details()
    channel.close()


def test_a_server_must_prove_it_is_the_peer_we_meant(fed, partner):
    # the partner's address, but we expect the bank there: its certificate does not say "bank"
    client = PeerClient(fed.config("other"), "bank", f"127.0.0.1:{fed.ports['partner']}")
    client.connect_timeout = 0.5
    with pytest.raises(PeerUnreachableError, match="peer 'bank'"):
        client.health()
    client.close()


def test_jobs_the_policy_forbids_are_refused_with_policy_error(fed, partner):
    with connect_federation(fed.config("bank"), embedded=False) as bank:
        cases = {
            "protocol 'test-dataset'": ("test-dataset", {}, {"partner": ["features"]}),
            "datasets ['secret']": ("ping", {}, {"partner": ["secret"]}),
            "does not allow insecure modes": ("ping", {"train": {"insecure": True}}, {"partner": ["features"]}),
        }
        for i, (message, (protocol, params, datasets)) in enumerate(cases.items()):
            with pytest.raises(PolicyError, match="peer 'partner'.*refused starting job") as err:
                bank.start_job("partner", f"forbidden-{i}", protocol, params, ROLES, datasets)
            assert message in str(err.value)
    with connect_federation(fed.config("other"), embedded=False) as other:
        with pytest.raises(PolicyError, match="does not allow peer 'other'"):
            other.start_job("partner", "forbidden-other", "ping", {},
                            {"other": "guest", "partner": "host"}, {"partner": ["features"]})


def test_200_mb_array_crosses_the_channel_intact(fed, partner):
    n = 25_000_000  # float64: 200 MB
    with connect_federation(fed.config("bank")) as bank:
        t = time.monotonic()
        with bank.job("big-array", "test-digest", {"n": n}, ROLES, {"partner": ["features"]}) as ctx:
            out = kit.digest(ctx, None, {"n": n, "seed": 3})
        seconds = time.monotonic() - t
    assert out["answers"]["partner"] == {"sha256": out["expected"], "shape": [n], "dtype": "float64"}
    assert seconds < 30


def _pair(root):
    """A separate bank + partner federation (own certificates and ports) for process tests."""
    f = kit.Federation(root, ["bank", "partner"])
    f.write_config("bank")
    f.write_config("partner")
    return f


def _progress(client, party: str, job_id: str) -> str:
    try:
        return client.job_status(party, job_id).progress
    except PeerError:  # the bank has not started the partner's role yet
        return ""


def test_killed_partner_fails_the_bank_job_naming_it_and_both_stores_say_failed(tmp_path):
    fed = _pair(tmp_path)
    partner_yaml = fed.root / "partner" / "party.yaml"
    partner = kit.Served(partner_yaml, fed.ports["partner"], tmp_path / "partner.log")
    bank = kit.Served(fed.root / "bank" / "party.yaml", fed.ports["bank"], tmp_path / "bank.log")
    try:
        with connect_federation(fed.config("bank"), embedded=False) as client:
            client.start_job("bank", "killed", "test-rounds", {"rounds": 10_000, "pause": 0.02},
                             ROLES, {})
            deadline = time.monotonic() + 20
            while not _progress(client, "partner", "killed"):
                assert time.monotonic() < deadline, "the partner's role never got going"
                time.sleep(0.1)
            partner.kill()
            killed_at = time.monotonic()
            info = client.wait_job("bank", "killed", timeout=30, poll=0.1)
            elapsed = time.monotonic() - killed_at
            assert info.state == "failed"
            assert "peer 'partner'" in (info.error or "") and "round/" in (info.error or "")
            connect = fed.config("bank").timeouts.connect
            assert elapsed < connect + 5, f"bank noticed after {elapsed:.1f}s"
            with pytest.raises(PeerError, match="failed on 'bank'.*peer 'partner'"):
                info.raise_for_state()

            partner = kit.Served(partner_yaml, fed.ports["partner"], tmp_path / "partner2.log")
            after = client.job_status("partner", "killed")
            assert after.state == "failed" and "interrupted by restart" in (after.error or "")
    finally:
        partner.stop()
        bank.stop()
    for name in ("bank", "partner"):  # the stores themselves, read after both services stopped
        store = JobStore.for_store(fed.root / name / "store")
        record = store.get("killed")
        store.close()
        assert record is not None and record.state == "failed" and record.finished_at
        assert record.role == ROLES[name] and record.peer == "bank"


def test_job_between_two_served_parties_is_submitted_to_the_bank(tmp_path):
    fed = _pair(tmp_path)
    partner = kit.Served(fed.root / "partner" / "party.yaml", fed.ports["partner"], tmp_path / "p.log")
    bank = kit.Served(fed.root / "bank" / "party.yaml", fed.ports["bank"], tmp_path / "b.log")
    try:
        with connect_federation(fed.config("bank"), embedded=False) as client:
            info = client.run("served-rounds", "test-rounds", {"rounds": 20, "pause": 0},
                              ROLES, {}, timeout=60)
            assert info.result == {"total": 2 * sum(range(20))}
            assert client.wait_job("partner", "served-rounds", 10).state == "succeeded"
    finally:
        partner.stop()
        bank.stop()


def test_plaintext_needs_the_explicit_flag_and_is_warned_loudly(fed, tmp_path):
    path = fed.write_config("other", tls=None, insecure=True, peers={},
                            policy={"allow_insecure": True})
    try:
        refused = subprocess.run([sys.executable, "-m", "vfl.cli", "serve", "--config", str(path)],
                                 capture_output=True, text=True, cwd=str(kit.REPO), timeout=60)
        assert refused.returncode == 2
        assert "plaintext transport needs both `insecure: true` and `vfl serve --insecure`" in refused.stderr
        served = kit.Served(path, fed.ports["other"], tmp_path / "insecure.log", "--insecure")
        served.stop()
        assert "PLAINTEXT transport" in served.log()
    finally:
        fed.write_config("other")

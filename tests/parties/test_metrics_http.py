"""The metrics port over real mutual TLS: a listed scraper reads /metrics and /v1/ready, a
certificate of the CA that is not listed is refused, no certificate or another CA's fails the
handshake; readiness names its unmet conditions; `vfl health --ready` asks a running
`vfl serve` with the party's own certificate."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.parties import service_kit as kit
from vfl.crypto.tls import create_ca, issue_party_cert
from vfl.errors import ConfigError
from vfl.parties.config import PartyConfig
from vfl.parties.metrics_http import ask_ready, serve_metrics
from vfl.parties.service import PartyService


def get(port: int, path: str, certs: Path | None, name: str | None, ca: Path) -> tuple[int, bytes]:
    """GET `path` from the partner's metrics port as `name` (its certificate in `certs`)."""
    context = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    if name is not None and certs is not None:
        context.load_cert_chain(str(certs / f"{name}.pem"), str(certs / f"{name}.key"))
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), 10), server_hostname="partner")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.sock = sock
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    f = kit.Federation(root, ["bank", "partner"])
    for name in ("scraper", "stranger"):
        issue_party_cert(f.certs, name)
    create_ca(root / "foreign")
    issue_party_cert(root / "foreign", "scraper")
    f.metrics_port = kit.free_port()  # type: ignore[attr-defined]
    f.write_config("partner", metrics={"listen": f"127.0.0.1:{f.metrics_port}", "clients": ["scraper"]})
    return f


@pytest.fixture(scope="module")
def service(fed):
    with PartyService(fed.config("partner"), parts=[serve_metrics]) as running:
        yield running


def test_a_listed_scraper_reads_the_metrics_and_the_readiness(fed, service):
    status, body = get(fed.metrics_port, "/metrics", fed.certs, "scraper", fed.certs)
    assert status == 200
    assert 'vfl_service_info{party="partner"' in body.decode()
    assert 'vfl_jobs{state="running"} 0.0' in body.decode()
    status, body = get(fed.metrics_port, "/v1/ready", fed.certs, "scraper", fed.certs)
    assert (status, json.loads(body)) == (200, {"status": "ready"})


def test_a_scraper_without_a_listed_certificate_is_refused(fed, service):
    for path in ("/metrics", "/v1/ready"):
        status, body = get(fed.metrics_port, path, fed.certs, "stranger", fed.certs)
        assert status == 403, path
        assert json.loads(body) == {"error": "'stranger' is not in metrics.clients of 'partner'"}
        assert b"vfl_" not in body
    # liveness carries no data: any certificate of the CA may ask
    status, body = get(fed.metrics_port, "/v1/health", fed.certs, "stranger", fed.certs)
    assert (status, json.loads(body)) == (200, {"status": "ok"})


@pytest.mark.parametrize("who", ["no certificate", "another CA"])
def test_a_scraper_without_a_certificate_of_the_ca_fails_the_handshake(fed, service, who):
    certs = None if who == "no certificate" else fed.root / "foreign"
    name = None if who == "no certificate" else "scraper"
    with pytest.raises(OSError):  # ssl.SSLError or a reset: the server refused the handshake
        get(fed.metrics_port, "/metrics", certs, name, fed.certs)


def test_readiness_names_every_unmet_condition(fed, service):
    config = fed.config("partner")
    assert ask_ready(config) == (True, {"status": "ready"})
    service.readiness.add("registry", lambda: "registry session lost")
    try:
        assert ask_ready(config) == (False, {"status": "not ready",
                                             "unmet": {"registry": "registry session lost"}})
        status, body = get(fed.metrics_port, "/metrics", fed.certs, "scraper", fed.certs)
        assert "vfl_ready 0.0" in body.decode()
    finally:
        service.readiness.add("registry", lambda: None)


def health_ready(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfl.cli", "health", "--config", str(config), "--ready"],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(kit.REPO)))


def test_vfl_health_ready_asks_the_running_service_and_fails_when_it_is_gone(tmp_path):
    fed = kit.Federation(tmp_path, ["bank", "partner"])
    port = kit.free_port()
    config = fed.write_config("bank", metrics={"listen": f"127.0.0.1:{port}"})
    served = kit.Served(config, fed.ports["bank"], tmp_path / "bank.log")
    try:
        done = health_ready(config)
        assert done.returncode == 0, done.stderr + served.log()
        assert json.loads(done.stdout) == {"status": "ready"}
    finally:
        served.stop()
    done = health_ready(config)
    assert done.returncode == 2 and done.stdout == ""
    assert f"the metrics port of 'bank' at 127.0.0.1:{port} did not answer" in done.stderr

    done = health_ready(fed.write_config("partner"))
    assert done.returncode == 2
    assert "party 'partner': metrics.listen is not set" in done.stderr


def test_plain_http_metrics_must_be_opened_explicitly():
    with pytest.raises(ValueError, match=r"clients: \['\*'\] explicitly"):
        PartyConfig.model_validate({"name": "bank", "metrics": {"listen": "127.0.0.1:9464", "tls": False}})
    with pytest.raises(ValueError, match="metrics.tls needs the party's `tls` section"):
        PartyConfig.model_validate({"name": "bank", "insecure": True, "metrics": {"listen": "127.0.0.1:9464"}})
    PartyConfig.model_validate({"name": "bank", "insecure": True,
                                "metrics": {"listen": "127.0.0.1:9464", "tls": False, "clients": ["*"]}})


def test_a_metrics_address_in_use_is_an_error_naming_the_field(fed, service):
    config = fed.config("partner").model_copy(update={"listen": f"127.0.0.1:{kit.free_port()}"})
    with pytest.raises(ConfigError, match=rf"metrics.listen: cannot listen on 127.0.0.1:{fed.metrics_port}"):
        PartyService(config, parts=[serve_metrics]).start()

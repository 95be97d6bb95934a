"""What an adversarial review tried against the serving endpoints of two `vfl serve` processes
(mutual TLS): strangers' certificates on a host's Score RPC and on the metrics, malformed HTTP
(fuzzed, too), unknown models, ids of the wrong type, private store files, and a partner
SQL dataset without a `features:` list served online.
"""

from __future__ import annotations

import json
import socket
import ssl
import stat
import time

import grpc
import numpy as np
import pytest
import requests
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.parties import service_kit as kit
from tests.serving.conftest import HOST_FEATURES, MODEL
from vfl.connectors import read_table, write_table
from vfl.crypto.tls import issue_party_cert
from vfl.errors import DataError, ProtocolError, UnknownModelError
from vfl.serving.cache import Serving
from vfl.serving.http_api import serve_http
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.proto import serving_pb2_grpc as spb_grpc
from vfl.store.models import ModelStore

SCORE = f"/v1/models/{MODEL}/score"


def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes as an HTTP request, close our side, return the status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _post(path: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST",
          version: str = "HTTP/1.1") -> bytes:
    fields = {"Host": "bank", "Content-Type": "application/json", "Content-Length": str(len(body)),
              **(headers or {})}
    lines = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return f"{method} {path} {version}\r\n{lines}\r\n".encode("latin-1") + body


def _known_ids(trained, n: int = 3) -> list[int]:
    return [int(i) for i in trained.expected["id"].head(n)]


# --- 3. a stranger on a host's scoring RPC ----------------------------------------------------


def test_a_certificate_that_is_no_peer_is_refused_by_the_hosts_scoring_and_logged_once(trained):
    issue_party_cert(trained.fed.certs, "mallory")  # the federation's CA, but not in partner.yaml
    certs = trained.fed.certs
    credentials = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes(),
                                               (certs / "mallory.key").read_bytes(),
                                               (certs / "mallory.pem").read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{trained.fed.ports['partner']}", credentials,
                                  options=[("grpc.ssl_target_name_override", "partner")])
    request = spb.ScoreRequest(model_id=MODEL, ids=spb.Ids(ints=_known_ids(trained)), request_id="probe-3")
    try:
        with pytest.raises(grpc.RpcError) as err:
            spb_grpc.ScoringStub(channel).Score(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        details = err.value.details()
        assert "'mallory' is not in serving.clients of 'partner'" in details
        assert MODEL not in details and trained.job_id not in details  # no model names, no versions
        with pytest.raises(grpc.RpcError) as err:
            spb_grpc.InferenceStub(channel).Describe(spb.DescribeRequest(sender="mallory", model_id=MODEL),
                                                     timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        channel.close()
    time.sleep(0.2)
    log = trained.partner.log()
    assert len([line for line in log.splitlines() if "probe-3" in line]) == 1  # the Score refusal, once
    assert str(_known_ids(trained)[0]) not in log  # without payload


# --- 4. malformed HTTP --------------------------------------------------------------------------


@pytest.mark.parametrize("request_bytes, message", [
    (_post(SCORE, json.dumps({"ids": [2 ** 63]}).encode()), "must fit in 64 bits"),
    (_post(SCORE, json.dumps({"ids": [-(2 ** 63) - 1, 5]}).encode()), "must fit in 64 bits"),
    (_post(SCORE, b'{"ids": [1]}', {"Content-Length": "abc"}), "Content-Length"),
    (_post(SCORE, b'{"ids": [1]}', {"Content-Length": "-5"}), "Content-Length"),
    (_post(SCORE, b'{"ids": [1]}', {"Content-Length": "99"}), "of the 99 bytes"),
    (_post(SCORE, b"[" * 200_000 + b"]" * 200_000), "nested too deeply"),
    (_post(SCORE, b'{"ids": ' + b"[" * 500 + b"1" + b"]" * 500 + b"}"), "'ids' must be"),
    (_post("/v1/models/../score", b'{"ids": [1]}'), "is not a safe name"),
    (_post("/v1/models/%2e%2e/score", b'{"ids": [1]}'), "is not a safe name"),
])
def test_malformed_requests_get_a_4xx_with_a_short_message(trained, request_bytes, message):
    status, body = _raw(trained.http_port, request_bytes)
    assert 400 <= status < 500, body[:300]
    reply = json.loads(body)
    assert message in reply["error"] and len(reply["error"]) < 200
    assert reply["kind"] != "internal" and "Traceback" not in reply["error"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
_bodies = st.one_of(
    st.binary(max_size=300),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={
        "ids": st.one_of(st.lists(st.integers(), max_size=4), st.lists(st.text(max_size=8), max_size=4),
                         _json_values),
        "features": _json_values,
        "request_id": _json_values,
    }).map(lambda v: json.dumps(v).encode()),
)
_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters=":\r\n"),
                       max_size=30)
_headers = st.dictionaries(
    st.sampled_from(["Content-Length", "Content-Type", "Transfer-Encoding", "Expect", "Connection",
                     "X-Anything", "Host"]) | _header_text.filter(lambda s: s.strip() != ""),
    st.integers(-10, 10 ** 15).map(str) | _header_text,
    max_size=4,
)


@pytest.mark.parametrize("method, version, status", [
    ("PUT", "HTTP/1.1", 405), ("BREW", "HTTP/1.1", 405), ("POST", "HTTP/3.0", 400), ("POST", "HTTX", 400),
])
def test_requests_the_http_parser_refuses_get_a_4xx(trained, method, version, status):
    got, _ = _raw(trained.http_port, _post(SCORE, b'{"ids": [1]}', method=method, version=version))
    assert got == status


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_bodies, headers=_headers, path=st.sampled_from([SCORE, "/v1/models/nope/score", "/v1/x"]),
       method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "HEAD", "FOO"]))
def test_fuzzed_bodies_and_headers_never_get_a_5xx(trained, body, headers, path, method):
    status, reply = _raw(trained.http_port, _post(path, body, headers, method))
    assert status < 500, reply[:300]
    alive, _ = _raw(trained.http_port, b"GET /v1/health HTTP/1.1\r\nHost: bank\r\n\r\n")
    assert alive == 200


# runs right after the fuzzing (tests run in file order)


def test_a_normal_request_succeeds_after_the_fuzzing(trained):
    ids = _known_ids(trained)
    reply = requests.post(f"http://127.0.0.1:{trained.http_port}{SCORE}", json={"ids": ids}, timeout=30)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose([r["score"] for r in reply.json()["results"]],
                               trained.expected["score"].head(3), rtol=0, atol=1e-9)


# --- 5. metrics and health ----------------------------------------------------------------------


def _https_get(trained, port: int, path: str, identity: str) -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=str(trained.fed.certs / "ca.pem"))
    context.load_cert_chain(str(trained.fed.certs / f"{identity}.pem"), str(trained.fed.certs / f"{identity}.key"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="bank") as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bank\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_metrics_only_for_listed_clients_and_health_carries_no_data(trained):
    port = kit.free_port()
    config = trained.fed.config("bank")
    config = config.model_copy(update={"serving": config.serving.model_copy(update={
        "http_listen": f"127.0.0.1:{port}", "http_tls": True, "clients": ["app"], "audit": False})})
    serving = Serving(config)
    http = serve_http(serving)
    assert http is not None
    try:
        serving.metrics.observe("secret-model-of-another-caller", 1.0, 1)
        status, body = _https_get(trained, port, "/v1/metrics", "partner")  # a stranger to the app endpoint
        assert status == 403 and "secret-model" not in json.dumps(body)
        status, body = _https_get(trained, port, "/v1/metrics", "app")
        assert status == 200 and body["requests_by_model"] == {"secret-model-of-another-caller": 1}
        status, body = _https_get(trained, port, "/v1/health", "partner")
        assert (status, body) == (200, {"status": "ok"})
    finally:
        http.close()
        serving.close()
    assert requests.get(f"http://127.0.0.1:{trained.http_port}/v1/health", timeout=10).json() == {"status": "ok"}


# --- 7. private store files ---------------------------------------------------------------------


def test_store_folders_are_0700_and_files_0600(trained):
    with trained.scoring_client() as client:
        client.score(MODEL, _known_ids(trained))  # an audit row, at least
    for party in ("bank", "partner"):
        store = trained.root / party / "store"
        paths = [store, *store.rglob("*")]
        assert any(p.name == "models.db" for p in paths) and any(p.name == "jobs.sqlite" for p in paths)
        assert party == "partner" or any(p.name == "predictions.db" for p in paths)
        assert any(p.suffix == ".npz" for p in paths) and any(p.name == "bundle.json" for p in paths)
        for path in paths:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


# --- 9. a SQL dataset without `features:` -------------------------------------------------------


def test_a_partner_sql_dataset_without_a_feature_list_is_served_with_the_exported_columns(trained, mariadb_url):
    record = ModelStore("partner", trained.root / "partner" / "store").get(MODEL)
    bundle = json.loads((trained.root / "partner" / "store" / "cache" / MODEL / record.version
                         / "bundle.json").read_text())
    assert bundle["columns"] == HOST_FEATURES  # export recorded exactly what the part reads
    # as the partner of the probe had it: its table in MariaDB, no `features:` in its dataset
    table = f"{mariadb_url}?table=partner_no_feature_list"
    write_table(read_table(f"sqlite:///{trained.root / 'partner.db'}?table=features"), table)
    path = trained.config_path("partner")
    original = path.read_text()
    config = yaml.safe_load(original)
    del config["datasets"]["credit"]["features"]
    config["datasets"]["credit"]["uri"] = table
    path.write_text(yaml.safe_dump(config))
    try:
        trained.restart_partner()
        ids = trained.expected["id"].head(10)
        deadline = time.monotonic() + 20
        while True:  # the bank's channel reconnects to the restarted partner by itself
            try:
                with trained.scoring_client() as client:
                    got = client.score(MODEL, ids)
                break
            except DataError:
                raise
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        np.testing.assert_allclose(got["score"], trained.expected["score"].head(10), rtol=0, atol=1e-9)
        assert (got["missing"] == "").all()
    finally:
        path.write_text(original)
        trained.restart_partner()


# --- issue 21: unknown models, id types, failed requests ---------------------------------------


def test_an_unknown_model_is_a_404_listing_the_served_models(trained):
    reply = requests.post(f"http://127.0.0.1:{trained.http_port}/v1/models/nope/score",
                          json={"ids": [1]}, timeout=30)
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert "no model 'nope'" in error and f"models it serves: ['{MODEL}']" in error
    assert "a production version" not in error
    with trained.scoring_client() as client:
        with pytest.raises(UnknownModelError, match="no model 'nope'"):
            client.score("nope", [1])
        with pytest.raises(ProtocolError, match="model_id: '..' is not a safe name"):
            client.score("..", [1])


def test_a_fresh_party_with_nothing_trained_starts_without_warnings(tmp_path):
    fed = kit.Federation(tmp_path, ["fresh", "peer"])
    (tmp_path / "features.csv").write_text("id,x\n1,0.5\n2,0.7\n")
    path = fed.write_config("fresh", datasets={"credit": {"uri": str(tmp_path / "features.csv"), "id_column": "id"}},
                            serving={"models": {MODEL: {"dataset": "credit"}}})
    served = kit.Served(path, fed.ports["fresh"], tmp_path / "fresh.log")
    try:
        deadline = time.monotonic() + 20
        while "has no production version here yet" not in served.log():
            assert time.monotonic() < deadline, served.log()
            time.sleep(0.1)
    finally:
        served.stop()
    assert " WARNING " not in served.log(), served.log()


def test_integer_ids_sent_as_strings_are_converted_when_lossless(trained):
    ids = _known_ids(trained)
    url = f"http://127.0.0.1:{trained.http_port}{SCORE}"
    as_text = requests.post(url, json={"ids": [str(i) for i in ids]}, timeout=30)
    assert as_text.status_code == 200, as_text.text
    assert [r["missing"] for r in as_text.json()["results"]] == [[], [], []]
    np.testing.assert_allclose([r["score"] for r in as_text.json()["results"]],
                               trained.expected["score"].head(3), rtol=0, atol=1e-9)
    for bad in (["0010000"], [" 10000"], ["10000.0"], ["1e4"], ["x1"], [str(2 ** 63)]):
        reply = requests.post(url, json={"ids": bad}, timeout=30)
        assert reply.status_code == 422, (bad, reply.text)
        assert "int64" in reply.json()["error"] and reply.json()["kind"] == "DataError"
    with trained.scoring_client() as client:
        got = client.score(MODEL, [str(i) for i in ids])
    np.testing.assert_allclose(got["score"], trained.expected["score"].head(3), rtol=0, atol=1e-9)


def test_failed_requests_are_logged_once_without_payload_and_audited(trained):
    secret_id = 987_654_321
    requests.post(f"http://127.0.0.1:{trained.http_port}/v1/models/nope/score",
                  json={"ids": [secret_id], "request_id": "fail-http-1"}, timeout=30)
    requests.post(f"http://127.0.0.1:{trained.http_port}{SCORE}",
                  json={"ids": [str(secret_id) + "x"], "request_id": "fail-http-2"}, timeout=30)
    with trained.scoring_client() as client, pytest.raises(UnknownModelError):
        client.score("nope", [secret_id], request_id="fail-grpc-1")
    engine = sa.create_engine(f"sqlite:///{trained.root / 'bank' / 'store' / 'predictions.db'}")
    query = sa.text("SELECT request_id, status, kind, n_ids FROM vfl_failed_requests "
                    "WHERE request_id LIKE 'fail-%' ORDER BY request_id")
    deadline = time.monotonic() + 10
    rows: list = []
    while len(rows) < 3 and time.monotonic() < deadline:  # written by the audit thread
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        time.sleep(0.1)
    engine.dispose()
    assert rows == [("fail-grpc-1", "NOT_FOUND", "UnknownModelError", 1),
                    ("fail-http-1", "404", "UnknownModelError", 1),
                    ("fail-http-2", "422", "DataError", 1)]
    log = trained.bank.log()
    for request_id in ("fail-http-1", "fail-http-2", "fail-grpc-1"):
        assert len([line for line in log.splitlines() if request_id in line]) == 1, request_id
    assert str(secret_id) not in log

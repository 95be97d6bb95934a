"""The client-side balancer over real gRPC servers on loopback (plaintext: what is balanced is
the same for TLS channels): round robin, failover of idempotent calls on a replica that is
gone, no retry of other calls, each replica tried once per call."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from vfl.net.balance import Balancer, NoReplicaError, ReplicaCallError

METHOD = "/test.Echo/Say"


def _server(name: str, seen: Counter) -> tuple[grpc.Server, str]:
    def say(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen[name] += 1
        return name.encode()

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(say, request_deserializer=None, response_serializer=None)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Echo", {"Say": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _say(stub, left: float) -> bytes:
    return stub(b"hi", timeout=left)


@pytest.fixture
def two_replicas():
    seen: Counter = Counter()
    servers = dict(a=_server("a", seen), b=_server("b", seen))
    addresses = [address for _, address in servers.values()]
    balancer = Balancer("echo", lambda: addresses, lambda channel: channel.unary_unary(METHOD), None, 1 << 20)
    yield balancer, servers, seen
    balancer.close()
    for server, _ in servers.values():
        server.stop(None)


def test_calls_are_spread_round_robin(two_replicas):
    balancer, _servers, seen = two_replicas
    answers = [balancer.call(_say, timeout=5) for _ in range(10)]
    assert seen == {"a": 5, "b": 5} and set(answers) == {b"a", b"b"}


def test_an_idempotent_call_fails_over_to_a_live_replica(two_replicas):
    balancer, servers, seen = two_replicas
    servers["b"][0].stop(None)
    answers = [balancer.call(_say, timeout=5) for _ in range(10)]
    assert answers == [b"a"] * 10 and seen == {"a": 10}


def test_other_calls_are_not_retried_and_name_the_replica(two_replicas):
    balancer, servers, _seen = two_replicas
    servers["b"][0].stop(None)
    errors = []
    for _ in range(2):  # one of two lands on the stopped replica first
        try:
            balancer.call(_say, timeout=5, idempotent=False)
        except ReplicaCallError as exc:
            errors.append(exc)
    assert len(errors) == 1
    assert errors[0].address == servers["b"][1] and errors[0].rpc.code() == grpc.StatusCode.UNAVAILABLE


def test_every_replica_gone_fails_once_each_was_tried(two_replicas):
    balancer, servers, _seen = two_replicas
    for server, _ in servers.values():
        server.stop(None)
    start = time.monotonic()
    with pytest.raises(ReplicaCallError) as err:
        balancer.call(_say, timeout=20)
    assert err.value.tried == 2 and time.monotonic() - start < 10


def test_no_known_replica_is_an_error_naming_the_party():
    balancer = Balancer("echo", lambda: [], lambda channel: channel.unary_unary(METHOD), None, 1 << 20)
    with pytest.raises(NoReplicaError, match="no replica of 'echo' is known"):
        balancer.call(_say, timeout=1)

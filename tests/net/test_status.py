"""The error <-> status table: a refusal raised in a handler comes back to the caller as the
same kind of vfl error, over a real gRPC call on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from vfl.errors import ConfigError, DataError, PeerTimeoutError, PolicyError
from vfl.net.status import ERROR_KIND, STATUS, http_status_of, refusal, status_of

# what the caller gets back where the kind is shared by more than one error
SAME_KIND = {ConfigError: DataError, TimeoutError: PeerTimeoutError}


@pytest.fixture
def refusing_server() -> Iterator[tuple[dict[str, Exception], Callable[[bytes], Any]]]:
    raised: dict[str, Exception] = {}

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        code, kind = status_of(raised["exc"])
        context.set_trailing_metadata(((ERROR_KIND, kind),))
        context.abort(code, str(raised["exc"]))
        raise AssertionError("unreachable")

    generic = grpc.method_handlers_generic_handler(
        "test.Refuse", {"Call": grpc.unary_unary_rpc_method_handler(handler)})
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield raised, channel.unary_unary("/test.Refuse/Call")
    finally:
        channel.close()
        server.stop(0)


@pytest.mark.parametrize("cls", [row[0] for row in STATUS], ids=lambda c: c.__name__)
def test_every_refusal_in_the_table_comes_back_as_its_error(refusing_server, cls):
    raised, call = refusing_server
    raised["exc"] = cls("the host's own reason")
    with pytest.raises(grpc.RpcError) as failed:
        call(b"", timeout=10)
    error = refusal(failed.value, "peer 'partner' (127.0.0.1)", "scoring")
    assert type(error) is SAME_KIND.get(cls, cls)
    assert "peer 'partner' (127.0.0.1)" in str(error) and "the host's own reason" in str(error)


def test_an_unlisted_error_is_internal_and_a_transport_failure_has_no_kind():
    assert status_of(ValueError("x")) == (grpc.StatusCode.INTERNAL, "")
    assert http_status_of(ValueError("x")) == 500 and http_status_of(PolicyError("x")) == 403
    with grpc.insecure_channel("127.0.0.1:1") as channel:  # nothing listens on port 1
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary("/test.Refuse/Call")(b"", timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refusal(failed.value, "peer 'partner'", "scoring") is None

"""The committed gRPC modules are exactly what `python -m vfl.parties.proto.generate` makes."""

from __future__ import annotations

import pytest

from vfl.parties.proto import generate


def test_generated_code_is_up_to_date(tmp_path):
    pytest.importorskip("grpc_tools")
    fresh = generate.generate(tmp_path)
    assert [p.name for p in fresh] == list(generate.OUTPUTS)
    for path in fresh:
        committed = generate.PROTO.with_name(path.name)
        assert committed.exists(), f"{committed} missing: run python -m vfl.parties.proto.generate"
        assert path.read_text() == committed.read_text(), (
            f"{committed.name} is stale: run python -m vfl.parties.proto.generate"
        )


def test_generated_modules_describe_the_service():
    from vfl.parties.proto import vfl_pb2

    service = vfl_pb2.DESCRIPTOR.services_by_name["Party"]
    assert sorted(m.name for m in service.methods) == [
        "CancelJob", "GetJob", "Health", "ReportFailure", "Send", "StartJob",
    ]
    assert service.methods_by_name["Send"].client_streaming

"""The committed serving gRPC modules are exactly what `python -m vfl.parties.proto.generate` makes."""

from __future__ import annotations

import pytest

from vfl.parties.proto import generate


def test_generated_serving_code_is_up_to_date(tmp_path):
    pytest.importorskip("grpc_tools")
    fresh = generate.generate(tmp_path, generate.SERVING_PROTO)
    assert [p.name for p in fresh] == list(generate.outputs(generate.SERVING_PROTO))
    for path in fresh:
        committed = generate.SERVING_PROTO.with_name(path.name)
        assert committed.exists(), f"{committed} missing: run python -m vfl.parties.proto.generate"
        assert path.read_text() == committed.read_text(), (
            f"{committed.name} is stale: run python -m vfl.parties.proto.generate"
        )

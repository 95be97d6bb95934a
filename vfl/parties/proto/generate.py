"""Regenerate the gRPC modules from vfl.proto: ``python -m vfl.parties.proto.generate``.

The generated files are committed (a deployment needs no protoc); tests/parties/test_proto.py
regenerates into a temporary folder and fails if the committed ones are stale. The same command
also compiles the serving protocol (vfl/serving/proto/serving.proto, checked by
tests/serving/test_proto.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO = Path(__file__).with_name("vfl.proto")
ROOT = PROTO.parents[3]  # the folder holding the `vfl` package: imports become vfl.parties.proto
RELATIVE = PROTO.relative_to(ROOT).as_posix()
OUTPUTS = ("vfl_pb2.py", "vfl_pb2.pyi", "vfl_pb2_grpc.py")
SERVING_PROTO = ROOT / "vfl" / "serving" / "proto" / "serving.proto"


def outputs(proto: Path) -> tuple[str, ...]:
    return tuple(f"{proto.stem}{suffix}" for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))


def generate(out_root: Path = ROOT, proto: Path = PROTO) -> list[Path]:
    """Run protoc on `proto`; files land in ``out_root/<its folder>``. Returns their paths."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        proto.relative_to(ROOT).as_posix(),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {proto}")
    folder = out_root / proto.parent.relative_to(ROOT)
    return [folder / name for name in outputs(proto)]


def main() -> int:
    for proto in (PROTO, SERVING_PROTO):
        for path in generate(proto=proto):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

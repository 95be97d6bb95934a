"""A PSI protocol for the party service in tests: the host intersects its own dataset's ids.

For the test only, the host then sends the guest a digest of its aligned ids, so the test can
check row-by-row alignment across two OS processes without the ids crossing the wire.
The host's ids come from `psi_ids`: on a Dask engine a file table stays on its workers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from vfl.parties.registry import register
from vfl.psi import align, ecdh
from vfl.psi.partitioned import psi_ids


def aligned_digest(values: list[Any]) -> str:
    return hashlib.sha256(repr(values).encode()).hexdigest()


@register("test-psi")
def psi(ctx: Any, party: Any, params: Any) -> Any:
    if ctx.role != "host":
        raise ValueError("the guest side of test-psi runs in the test itself")
    ids = psi_ids(party, str(params["dataset"]))  # on a Dask engine: left on the workers
    result = ecdh.host(ctx.child("psi"), ids, chunk_size=int(params["chunk"]))
    ctx.send(ctx.guest, "digest", aligned_digest(align(ids, result).iloc[:, 0].tolist()))
    return None

"""A PSI outcome as an artifact in the party's store, referenced by id by later steps.

Every party of a job stores its own aligned table (own columns only) under the same artifact
id, derived from the job id and step, so a training step names one id and each party loads
its own side. Nothing here is sent to a peer.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vfl.errors import DataError
from vfl.parties.context import Context
from vfl.psi.ecdh import PsiResult, align
from vfl.store.files import inside, private_dir, seal

TABLE = "aligned.parquet"
META = "meta.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def artifact_id(ctx: Context) -> str:
    """The same id on every party of the job: ``psi-<job>[-<step>]``, file-name safe."""
    step = "" if ctx.step == "-" else "-" + ctx.step
    return _UNSAFE.sub("_", f"psi-{ctx.job_id}{step}")


def save_alignment(root: str | Path, ctx: Context, table: pd.DataFrame,
                   result: PsiResult) -> str:
    """Store `table` aligned by `result` (or only the counts, if cardinality_only)."""
    aid = artifact_id(ctx)
    folder = private_dir(inside(Path(root) / "psi", aid))
    meta: dict[str, Any] = {
        "artifact_id": aid, "party": ctx.name, "role": ctx.role, "job_id": ctx.job_id,
        "step": ctx.step, "size": result.size, "own_size": result.own_size,
        "peer_sizes": result.peer_sizes, "pair_sizes": result.pair_sizes,
        "cardinality_only": result.cardinality_only,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not result.cardinality_only:
        aligned = align(table, result)
        aligned.to_parquet(folder / TABLE, index=False)
        meta["columns"] = [str(c) for c in aligned.columns]
        np.save(folder / "rows.npy", np.asarray(result.rows, dtype=np.int64))
    (folder / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
    seal(folder)
    return aid


def load_alignment(root: str | Path, aid: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """This party's aligned table (None if cardinality_only) and the PSI counts."""
    if _UNSAFE.search(aid):
        raise DataError(f"invalid PSI artifact id {aid!r}")
    folder = Path(root) / "psi" / aid
    if not (folder / META).exists():
        raise DataError(f"no PSI artifact '{aid}' in {Path(root) / 'psi'}")
    meta = json.loads((folder / META).read_text())
    table = None if meta["cardinality_only"] else pd.read_parquet(folder / TABLE)
    return table, meta

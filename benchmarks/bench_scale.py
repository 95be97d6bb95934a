"""A party's heavy kernels on its own Dask cluster (TLS, one-thread workers) at 1 and 2 workers,
and on the local process pool, same run: Paillier encryption, the gradient product X^T [[d]],
PSI's hash-and-multiply (X25519 points), and scoring (a host's partials for 50,000 ids at a
time: look-up, standard scaling and its hetero LR part). On the local engine scoring runs in
the service's own process (its table loaded there); on Dask where the rows are kept. Rates are medians of `--repeats` rounds; every
round runs each engine in turn, so load drift on a shared machine hits all of them alike; one
untimed round first lets every worker build its per-key fixed-base table, as a long-lived
party's workers would have.

Derived figures: scaling efficiency from 1 to 2 workers (rate_2w / (2 rate_1w)) for Dask and,
as the machine's own baseline in the same run, for the local pool (1 and 2 processes); and
Dask's per-core rate against the local pool's (both at 2 workers). Prints ONE JSON line.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_scale.py [--bits 2048] [--rows 4000]
        [--psi-ids 200000] [--score-rows 200000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' real servers and fixtures

from tests.support.dask_cluster import dask_cluster  # noqa: E402
from vfl.algorithms.hetero_lr.model import LRHostPart  # noqa: E402
from vfl.connectors import DatasetSpec  # noqa: E402
from vfl.connectors.tables import table_parts  # noqa: E402
from vfl.crypto import generate_keypair  # noqa: E402
from vfl.parties.compute import connect  # noqa: E402
from vfl.parties.config import ComputeConfig  # noqa: E402
from vfl.parties.executor import shared_process_pool  # noqa: E402
from vfl.preprocessing.preprocessor import PartyPreprocessor  # noqa: E402
from vfl.psi.ids import id_columns, take  # noqa: E402
from vfl.psi.stream import chunk_bounds, ordered  # noqa: E402
from vfl.psi.x25519 import hash_encrypt, new_key, new_salt  # noqa: E402
from vfl.serving.bundle import ModelBundle  # noqa: E402
from vfl.serving.features import IndexedTableSource  # noqa: E402
from vfl.serving.partitioned import PartitionedTableSource  # noqa: E402
from vfl.serving.scoring import HostScorer  # noqa: E402

SCORE_CHUNK = 50_000  # ids a guest asks a host for at once (a batch job's default chunk)


def kernels(bits: int, rows: int, feats: int, psi_ids: int, table: Path,
            score_rows: int) -> Callable[[Any], dict[str, tuple[Callable[[], Any], int]]]:
    """The four kernels as (run, units) on a given executor."""
    pub, _ = generate_keypair(bits)
    rng = np.random.default_rng(bits)
    x, X = rng.normal(size=rows), rng.normal(size=(rows, feats))
    key, salt = new_key(), new_salt()
    ids = id_columns(pd.DataFrame({"id": np.arange(psi_ids, dtype=np.int64)}), "bench")
    spec, bundle = _served_table(table, 2 * score_rows, feats, rng)
    asked = pd.Series(rng.permutation(2 * score_rows)[:score_rows], dtype=np.int64)

    def on(executor: Any) -> dict[str, tuple[Callable[[], Any], int]]:
        enc = pub.encrypt(x, executor=executor)
        # the local engine looks rows up in the service; a cluster keeps them on its workers
        source = (PartitionedTableSource(spec, executor, table_parts(spec.uri) or [], "bench")
                  if hasattr(executor, "keep") else IndexedTableSource(spec))
        host = HostScorer(bundle, source)

        def score() -> None:
            for lo, hi in chunk_bounds(score_rows, SCORE_CHUNK):
                host.partials(asked.iloc[lo:hi])

        def psi() -> None:
            calls = ((key, salt, take(ids, np.arange(lo, hi))) for lo, hi in chunk_bounds(psi_ids, 8192))
            for _ in ordered(executor, hash_encrypt, calls, _never()):
                pass

        return {"encrypt": (lambda: pub.encrypt(x, executor=executor), rows),
                "xtd": (lambda: pub.matmul(X.T, enc, executor=executor), rows * feats),
                "psi_points": (psi, psi_ids),
                "score_rows": (score, score_rows)}

    return on


def _served_table(folder: Path, n: int, feats: int, rng: np.random.Generator) -> tuple[DatasetSpec, ModelBundle]:
    """A host's feature table of `n` rows in 8 Parquet part files, and a host part of hetero LR
    with standard scaling fitted on it."""
    columns = [f"f{j}" for j in range(feats)]
    frame = pd.DataFrame(rng.normal(size=(n, feats)), columns=columns)
    frame.insert(0, "id", np.arange(n, dtype=np.int64))
    folder.mkdir()
    for k, rows in enumerate(np.array_split(np.arange(n), 8)):
        frame.iloc[rows].to_parquet(folder / f"part-{k}.parquet", index=False)
    spec = DatasetSpec(uri=str(folder), id_columns=["id"], features=columns)
    scale = PartyPreprocessor(config={"numeric": {"columns": columns, "scale": "standard"}}).fit(frame[columns])
    return spec, ModelBundle("hetero_lr", "host", LRHostPart(rng.normal(size=scale.transform(frame[columns].head()).shape[1])),
                             columns, scale)


def _never() -> threading.Event:
    return threading.Event()  # a stop flag nobody sets


def measure(engines: dict[str, dict[str, tuple[Callable[[], Any], int]]], repeats: int) -> dict[str, dict[str, float]]:
    times: dict[str, dict[str, list[float]]] = {e: {k: [] for k in c} for e, c in engines.items()}
    for cases in engines.values():  # warm-up: every worker builds its fixed-base table once
        for fn, _units in cases.values():
            fn()
    for _ in range(repeats):
        for engine, cases in engines.items():
            for k, (fn, _units) in cases.items():
                t0 = time.perf_counter()
                fn()
                times[engine][k].append(time.perf_counter() - t0)
    return {e: {k: engines[e][k][1] / statistics.median(v) for k, v in ts.items()}
            for e, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=2048)
    ap.add_argument("--rows", type=int, default=4000, help="values encrypted; rows of X^T [[d]]")
    ap.add_argument("--feats", type=int, default=10)
    ap.add_argument("--psi-ids", type=int, default=200_000)
    ap.add_argument("--score-rows", type=int, default=200_000,
                    help="ids scored (host partials), from a table of twice as many rows")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    local = shared_process_pool()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vfl-bench-scale-") as tmp, \
            dask_cluster(Path(tmp) / "dask", workers=1) as cluster:
        on = kernels(args.bits, args.rows, args.feats, args.psi_ids, Path(tmp) / "table", args.score_rows)
        compute = connect(ComputeConfig(**cluster.compute_section()), None, "bench")
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as single:
            one = measure({"dask_1w": on(compute.executor), "local_1w": on(single)}, args.repeats)
        cluster.add_worker()
        rates = {**one, **measure({"dask_2w": on(compute.executor), "local_2w": on(local)}, args.repeats)}
        compute.close()
    out: dict[str, Any] = {"bench": "scale", "bits": args.bits, "rows": args.rows, "feats": args.feats,
                           "psi_ids": args.psi_ids, "score_rows": args.score_rows, "repeats": args.repeats, "cpus": os.cpu_count(),
                           "load_avg": os.getloadavg()[0], "rates": rates}
    out["efficiency_1_to_2"] = {k: rates["dask_2w"][k] / (2 * rates["dask_1w"][k]) for k in rates["dask_1w"]}
    # the machine's own 1 -> 2 scaling in the same run: what a second worker can get here
    out["local_efficiency_1_to_2"] = {k: rates["local_2w"][k] / (2 * rates["local_1w"][k]) for k in rates["local_1w"]}
    out["dask_vs_local_per_core"] = {k: rates["dask_2w"][k] / rates["local_2w"][k] for k in rates["local_2w"]}
    out["seconds"] = time.perf_counter() - started
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Connectors: a 1,000,000-row table streamed through every connector, rows/s and peak RSS.

The table (int64 id + 10 float64 columns) is written once to each store -- local CSV, local
Parquet, SQLite, a real MariaDB server (tests/support/mariadb.py) and HDFS over WebHDFS
(tests/support/webhdfs.py, a loopback NameNode + DataNode; CSV and Parquet files) -- then
read back in fresh processes by tests/support/rss_probe.py (the same probe as the streaming
test): streamed in chunks (``iter_table``) of each ``--chunk-rows`` size, and whole
(``read_table``), alternating in every round. The whole-table read is the same-run baseline:
the stream's peak RSS growth should be a small fraction of it and follow the chunk size, not
the table. Medians over
``--repeats`` rounds; write rows/s is measured once, in this process. Prints ONE JSON line.

    flock /tmp/vfl-bench.lock .venv/bin/python benchmarks/bench_connectors.py \
        [--rows 1000000] [--chunk-rows 10000 100000] [--repeats 3] [--only csv parquet ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CONNECTORS = ["csv", "parquet", "sqlite", "mysql", "hdfs-csv", "hdfs-parquet"]
FEATURES = 10
MB = 1 << 20


def table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame({"id": np.arange(rows, dtype=np.int64) * 7 + 10**12,
                         **{f"x{i}": rng.standard_normal(rows) for i in range(FEATURES)}})


def probe(uri: str, mode: str, chunk_rows: int) -> dict[str, Any]:
    """One read in a fresh process (imports and a warm-up read are not counted)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.rss_probe", uri, mode, str(chunk_rows)],
        capture_output=True, text=True, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"rss_probe {mode} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout))


def sinks(stack: ExitStack, workdir: str, only: list[str]) -> dict[str, str]:
    """A URI per connector; servers are started only for the connectors asked for."""
    sys.path.insert(0, str(ROOT))  # tests.support holds the real servers the tests use
    from tests.support.mariadb import MariaDBServer
    from tests.support.webhdfs import WebHdfsServer

    uris = {"csv": f"file://{workdir}/big.csv", "parquet": f"{workdir}/big.parquet",
            "sqlite": f"sqlite:///{workdir}/big.db?table=big"}
    if "mysql" in only:
        uris["mysql"] = stack.enter_context(MariaDBServer()).url + "?table=big"
    if any(k.startswith("hdfs") for k in only):
        hdfs = stack.enter_context(WebHdfsServer(root=os.path.join(workdir, "hdfs")))
        uris["hdfs-csv"] = f"{hdfs.url}/data/big.csv"
        uris["hdfs-parquet"] = f"{hdfs.url}/data/big.parquet"
    return {k: uris[k] for k in only}


def bench(uri: str, df: pd.DataFrame, chunks: list[int], repeats: int) -> dict[str, Any]:
    from vfl.connectors import write_table

    t0 = time.perf_counter()
    write_table(df, uri)
    write_s = time.perf_counter() - t0
    modes = [f"stream_{c}" for c in chunks] + ["full"]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:
            kind, _, chunk = mode.partition("_")
            got = probe(uri, kind, int(chunk or max(chunks)))
            if got["rows"] != len(df):
                raise RuntimeError(f"{uri}: {mode} read {got['rows']} rows, wrote {len(df)}")
            runs[mode].append(got)

    def med(mode: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[mode])

    out: dict[str, Any] = {"write_rows_per_s": round(len(df) / write_s)}
    for mode in modes:
        out[mode] = {"rows_per_s": round(len(df) / med(mode, "seconds")),
                     "rss_growth_mb": round(med(mode, "growth") / MB, 1),
                     "rss_base_mb": round(med(mode, "rss_base") / MB, 1)}
    for mode in modes[:-1]:
        out[f"{mode}_vs_full_rss_growth"] = round(med(mode, "growth") / med("full", "growth"), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, nargs="+", default=[10_000, 100_000],
                    help="stream with each chunk size (growth should follow the chunk)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=CONNECTORS, default=CONNECTORS)
    args = ap.parse_args()
    df = table(args.rows)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-connectors-") as workdir, ExitStack() as stack:
        uris = sinks(stack, workdir, args.only)
        results = {name: bench(uri, df, sorted(args.chunk_rows), args.repeats)
                   for name, uri in uris.items()}
    print(json.dumps({
        "benchmark": "connectors",
        "rows": args.rows,
        "columns": 1 + FEATURES,
        "table_mb": round(df.memory_usage(index=False).sum() / MB, 1),
        "chunk_rows": args.chunk_rows,
        "chunk_mb": {str(c): round(c * (1 + FEATURES) * 8 / MB, 2) for c in args.chunk_rows},
        "repeats": args.repeats,
        "cores": os.cpu_count(),
        "results": results,
        "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }))


if __name__ == "__main__":
    main()

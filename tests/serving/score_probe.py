"""Measure one batch scoring run in a fresh process: rows, seconds and the peak RSS growth of
this process (the guest's coordinator) and of a host's `vfl serve` (by its pid).

    python -m tests.serving.score_probe CONFIG MODEL WARM_SOURCE SOURCE SINK HOST_PID

A first run on WARM_SOURCE maps in the code of Parquet, gRPC and the Dask client (tens of MB
that do not depend on the table's size); then both high-water marks are reset and SOURCE is
scored to SINK. Prints one JSON line: ``rows``, ``seconds``, ``growth``, ``host_growth``
(bytes). Used by tests/serving/test_partitioned.py and benchmarks/bench_scale.py.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from tests.support.rss_probe import peak_rss, reset_peak
from vfl.parties.config import load_party_config
from vfl.serving.online import batch_score


def main(argv: list[str]) -> None:
    config_path, model, warm, source, sink, host_pid = argv
    config = load_party_config(config_path)
    with tempfile.TemporaryDirectory() as tmp:
        batch_score(config, model, warm, str(Path(tmp) / "warm.parquet"), restart=True)
    base, host_base = reset_peak(), reset_peak(host_pid)
    start = time.perf_counter()
    summary = batch_score(config, model, source, sink, restart=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": summary.rows, "scored": summary.scored, "seconds": round(seconds, 2),
                      "growth": peak_rss() - base, "host_growth": peak_rss(host_pid) - host_base}))


if __name__ == "__main__":
    main(sys.argv[1:])

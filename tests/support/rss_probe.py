"""Measure one read of a table in a fresh process: rows, seconds and peak RSS.

    python -m tests.support.rss_probe URI stream|full [CHUNK_ROWS]

Prints one JSON line: ``rows``, ``seconds``, ``rss_base`` (bytes, after imports and a warm-up read of the first rows),
``rss_peak`` (bytes, the kernel's high-water mark VmHWM) and ``growth`` = peak - base. Used by the
streaming-memory test and by benchmarks/bench_connectors.py, so both measure the same way;
`reset_peak` and `peak_rss` also measure a running `vfl serve` by its pid (tests/psi/test_dask_memory.py).
"""

from __future__ import annotations

import json
import sys
import time


def _status(field: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"{field} missing from /proc/self/status")


def reset_peak(pid: int | str = "self") -> int:
    """Reset the high-water mark of this process (or of its child `pid`) to the current RSS
    and return it.

    ``getrusage`` would not do: after fork+exec its maximum still includes the parent's RSS.
    """
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")
    return _status("VmRSS", pid)


def peak_rss(pid: int | str = "self") -> int:
    return _status("VmHWM", pid)


def main(argv: list[str]) -> None:
    uri, mode = argv[0], argv[1]
    chunk_rows = int(argv[2]) if len(argv) > 2 else 100_000
    import pandas  # noqa: F401  (imports are not the table's memory)
    import pyarrow.parquet  # noqa: F401
    import sqlalchemy  # noqa: F401

    from vfl.connectors import iter_table, read_table

    # Warm up on the first chunk: the first read maps in code pages of the parquet, csv and
    # database libraries (tens of MB of RSS that do not depend on the table's size).
    warm = iter_table(uri, chunk_rows=min(chunk_rows, 1000))
    next(warm)
    warm.close()
    del warm
    base = reset_peak()
    start = time.perf_counter()
    if mode == "stream":
        rows = 0
        for chunk in iter_table(uri, chunk_rows=chunk_rows):
            rows += len(chunk)
            del chunk
    else:
        rows = len(read_table(uri))
    seconds = time.perf_counter() - start
    peak = peak_rss()
    print(json.dumps({"rows": rows, "seconds": seconds, "rss_base": base, "rss_peak": peak,
                      "growth": peak - base}))


if __name__ == "__main__":
    main(sys.argv[1:])

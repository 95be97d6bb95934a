"""Paillier engine vs `phe`, same run, same keys: ops/s and ratios (the ratio is the figure).

For 1024- and 2048-bit keys: encrypt, decrypt, add, elementwise plaintext multiply, and the
gradient product X^T [[d]] (N=30,000 rows x 10 features). `phe` does the same work element by
element (encrypt / decrypt / + / * / multiply-and-sum) on a subsample, because at ~70
encryptions/s the full N would take too long; rates per element are compared. Engine figures
are on one core (no executor) unless the key ends in `_2w` (the party's 2-worker process
pool). Medians of `--repeats` runs. Prints ONE JSON line.

    .venv/bin/python benchmarks/bench_paillier.py [--bits 1024 2048] [--rows 30000]
"""

from __future__ import annotations

import argparse
import functools
import json
import operator
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vfl.crypto import generate_keypair
from vfl.parties.executor import shared_process_pool


def rate(fn: Callable[[], Any], count: int, repeats: int) -> float:
    """Median ops/s of ``fn`` doing ``count`` operations."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return count / statistics.median(times)


def bench(bits: int, rows: int, feats: int, m: int, sub: int, repeats: int, pool: Any) -> dict:
    pub, priv = generate_keypair(bits)
    rng = np.random.default_rng(bits)
    x, w = rng.normal(size=m), rng.normal(size=m)
    X, d = rng.normal(size=(rows, feats)), rng.normal(size=rows) * 0.5
    pub.encrypt(x[:1])  # builds the fixed-base table once, like a long-lived party would
    for _ in range(4):
        pub.encrypt(x, executor=pool)  # ... and in every pool worker
    e = pub.encrypt(x)
    eng = {
        "encrypt": rate(lambda: pub.encrypt(x), m, repeats),
        "decrypt": rate(lambda: priv.decrypt(e), m, repeats),
        "add": rate(lambda: e + e, m, repeats),
        "multiply": rate(lambda: e * w, m, repeats),
        "encrypt_2w": rate(lambda: pub.encrypt(x, executor=pool), m, repeats),
        "decrypt_2w": rate(lambda: priv.decrypt(e, executor=pool), m, repeats),
    }
    ed = pub.encrypt(d, executor=pool)
    eng["xtd"] = rate(lambda: X.T @ ed, rows * feats, repeats)
    eng["xtd_2w"] = rate(lambda: pub.matmul(X.T, ed, executor=pool), rows * feats, repeats)
    got, want = priv.decrypt(pub.matmul(X.T, ed, executor=pool)), X.T @ d
    xtd_error = float(np.abs(got - want).max())

    ppub, ppriv = pub.phe, priv.phe
    xs, ws = [float(v) for v in x[:sub]], [float(v) for v in w[:sub]]
    pe = [ppub.encrypt(v) for v in xs]
    pd = [ppub.encrypt(float(v)) for v in d[:sub]]
    Xs = X[:sub]

    def phe_xtd() -> None:
        for j in range(feats):
            functools.reduce(operator.add, (c * float(Xs[i, j]) for i, c in enumerate(pd)))

    ref = {
        "encrypt": rate(lambda: [ppub.encrypt(v) for v in xs], sub, repeats),
        "decrypt": rate(lambda: [ppriv.decrypt(c) for c in pe], sub, repeats),
        "add": rate(lambda: [a + b for a, b in zip(pe, pe, strict=True)], sub, repeats),
        "multiply": rate(lambda: [c * v for c, v in zip(pe, ws, strict=True)], sub, repeats),
        "xtd": rate(phe_xtd, sub * feats, repeats),
    }
    ratio = {k: v / ref[k.removesuffix("_2w")] for k, v in eng.items()}
    return {
        "engine_ops_per_s": {k: round(v, 1) for k, v in eng.items()},
        "phe_ops_per_s": {k: round(v, 1) for k, v in ref.items()},
        "ratio_vs_phe": {k: round(v, 2) for k, v in ratio.items()},
        "xtd_max_abs_error": xtd_error,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bits", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--m", type=int, default=600, help="values per elementwise engine run")
    ap.add_argument("--phe-sample", type=int, default=150, help="values per phe run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    pool = shared_process_pool(2)
    load_before = os.getloadavg()[0]
    out = {
        "benchmark": "paillier",
        "rows": args.rows,
        "features": args.features,
        "cores": os.cpu_count(),
        "results": {
            str(b): bench(b, args.rows, args.features, args.m, args.phe_sample, args.repeats, pool)
            for b in args.bits
        },
        "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

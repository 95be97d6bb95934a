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


def rates(cases: dict[str, tuple[Callable[[], Any], int]], repeats: int) -> dict[str, float]:
    """Median ops/s per case; every round runs all cases in turn, so load drift on the shared
    machine hits the engine and `phe` alike."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for k, (fn, _count) in cases.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: cases[k][1] / statistics.median(v) for k, v in times.items()}


def bench(bits: int, rows: int, feats: int, m: int, sub: int, repeats: int, pool: Any) -> dict:
    pub, priv = generate_keypair(bits)
    ppub, ppriv = pub.phe, priv.phe
    rng = np.random.default_rng(bits)
    x, w = rng.normal(size=m), rng.normal(size=m)
    X, d = rng.normal(size=(rows, feats)), rng.normal(size=rows) * 0.5
    pub.encrypt(x[:1])  # builds the fixed-base table once, like a long-lived party would
    for _ in range(4):
        pub.encrypt(x, executor=pool)  # ... and in every pool worker
    e = pub.encrypt(x)
    ed = pub.encrypt(d, executor=pool)
    xs, ws = [float(v) for v in x[:sub]], [float(v) for v in w[:sub]]
    pe = [ppub.encrypt(v) for v in xs]
    pd = [ppub.encrypt(float(v)) for v in d[:sub]]
    Xs = X[:sub]

    def phe_xtd() -> None:  # element by element: multiply, then add up per feature
        for j in range(feats):
            functools.reduce(operator.add, (c * float(Xs[i, j]) for i, c in enumerate(pd)))

    cases = {
        "engine.encrypt": (lambda: pub.encrypt(x), m),
        "engine.encrypt_2w": (lambda: pub.encrypt(x, executor=pool), m),
        "phe.encrypt": (lambda: [ppub.encrypt(v) for v in xs], sub),
        "engine.decrypt": (lambda: priv.decrypt(e), m),
        "engine.decrypt_2w": (lambda: priv.decrypt(e, executor=pool), m),
        "phe.decrypt": (lambda: [ppriv.decrypt(c) for c in pe], sub),
        "engine.add": (lambda: e + e, m),
        "phe.add": (lambda: [a + b for a, b in zip(pe, pe, strict=True)], sub),
        "engine.multiply": (lambda: e * w, m),
        "phe.multiply": (lambda: [c * v for c, v in zip(pe, ws, strict=True)], sub),
        "engine.xtd": (lambda: X.T @ ed, rows * feats),
        "engine.xtd_2w": (lambda: pub.matmul(X.T, ed, executor=pool), rows * feats),
        "phe.xtd": (phe_xtd, sub * feats),
    }
    r = rates(cases, repeats)
    eng = {k.split(".", 1)[1]: v for k, v in r.items() if k.startswith("engine.")}
    ref = {k.split(".", 1)[1]: v for k, v in r.items() if k.startswith("phe.")}
    got, want = priv.decrypt(pub.matmul(X.T, ed, executor=pool)), X.T @ d
    ratio = {k: v / ref[k.removesuffix("_2w")] for k, v in eng.items()}
    return {
        "engine_ops_per_s": {k: round(v, 1) for k, v in eng.items()},
        "phe_ops_per_s": {k: round(v, 1) for k, v in ref.items()},
        "ratio_vs_phe": {k: round(v, 2) for k, v in ratio.items()},
        "xtd_max_abs_error": float(np.abs(got - want).max()),
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

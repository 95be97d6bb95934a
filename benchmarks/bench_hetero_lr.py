"""Benchmark: HE logistic regression, guest + host on this machine (simulation, one process pool).

Prints ONE JSON line with:
- default_credit (../shared/data, 80/20 split, seed 42), 2048-bit keys: seconds per epoch
  (median), total, test AUC/KS;
- the same protocol on `phe` element-wise arithmetic (EncryptedNumber per value, one process),
  timed on a subsample of rows in the same run and extrapolated to one epoch: the speed-up;
  wall seconds, and CPU seconds (this process and its worker pool), which other load on a
  shared machine disturbs much less than wall time;
- a synthetic 100,000 x (30 guest + 300 host) job at 1024-bit keys: seconds per epoch
  (extrapolated from the first `--synthetic-batches` batches unless 0 = the full epoch).

Run: .venv/bin/python benchmarks/bench_hetero_lr.py [--epochs 3] [--synthetic-batches 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import phe
import psutil
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' shared data sets

from tests.support.shared_data import hetero_split  # noqa: E402
from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression, host_fit, host_predict  # noqa: E402
from vfl.algorithms.optim import epoch_batches  # noqa: E402
from vfl.evaluation.binary import fast_auc_ks  # noqa: E402
from vfl.parties import simulate  # noqa: E402
from vfl.parties.executor import shared_process_pool  # noqa: E402

ROLES = {"bank": "guest", "partner": "host"}


def default_credit() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Xg, y, Xh = hetero_split("default_credit")
    return Xg.to_numpy(), y, Xh.to_numpy()


def federated(Xg, y, Xh, test: tuple[np.ndarray, np.ndarray] | None, **params: Any) -> dict[str, Any]:
    """Train (and score the test rows) with guest and host as threads sharing one process pool."""
    est = HeteroLogisticRegression(**params)

    def bank(ctx):
        est.fit(ctx, Xg, y)
        return None if test is None else est.predict_proba(ctx, test[0])[:, 1]

    def partner(ctx):
        part = host_fit(ctx, Xh)
        if test is not None:
            host_predict(ctx, test[1], part)

    cpu_marks: list[float] = []  # CPU seconds of the whole process tree at each guest epoch end
    t0 = time.perf_counter()
    out = simulate({"bank": (bank, {}), "partner": (partner, {})}, roles=ROLES,
                   executor=shared_process_pool(),
                   on_progress=lambda e: cpu_marks.append(_tree_cpu())
                   if e.party == "bank" and e.info.get("unit") == "epochs" else None)
    total = time.perf_counter() - t0
    epochs = [rec["seconds"] for rec in est.history_]
    cpu = np.diff(cpu_marks).tolist()  # from the 2nd epoch on (the 1st holds key generation)
    return {"epoch_seconds": epochs, "median_epoch_s": statistics.median(epochs),
            "epoch_cpu_seconds": cpu, "median_epoch_cpu_s": statistics.median(cpu) if cpu else None,
            "total_s": total, "proba": out["bank"]}


def _tree_cpu() -> float:
    """User + system CPU seconds of this process and its live children (the worker pool)."""
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def phe_protocol(Xg, y, Xh, key_bits: int, batch_size: int, rows: int) -> dict[str, float]:
    """One batch of the same protocol (steps 1-3, masks, decryptions) on phe EncryptedNumbers.

    Row-proportional work (encryptions, products, sums) is timed on `rows` rows; the per-batch
    work (blinding and decrypting the gradients) once; both are scaled to one epoch.
    """
    pub_g, priv_g = phe.generate_paillier_keypair(n_length=key_bits)
    pub_h, priv_h = phe.generate_paillier_keypair(n_length=key_bits)
    rng = np.random.default_rng(0)
    idx = epoch_batches(len(y), batch_size, 0, 0)[0][:rows]
    Xb, Hb = np.hstack([Xg[idx], np.ones((rows, 1))]), Xh[idx]
    yb = np.where(y[idx] == 1, 1.0, -1.0)
    wg, wh = rng.normal(scale=0.1, size=Xb.shape[1]), rng.normal(scale=0.1, size=Hb.shape[1])
    s = 1.0 / batch_size

    t0, c0 = time.perf_counter(), time.process_time()
    z_h = Hb @ wh
    enc_zh = [pub_h.encrypt(float(v)) for v in z_h]  # 1. host: [[z_h]]_H
    u = s * (Xb @ wg / 4 - yb / 2)
    enc_u = [pub_g.encrypt(float(v)) for v in u]  # 3. guest: [[u]]_G
    M = Xb * (s / 4)
    grad_g = [sum((enc_zh[i] * float(M[i, j]) for i in range(1, rows)), enc_zh[0] * float(M[0, j]))
              + float(Xb[:, j] @ u) for j in range(Xb.shape[1])]  # 2. guest: [[g_g]]_H
    enc_d = [enc_u[i] + float(z_h[i] * s / 4) for i in range(rows)]  # 3. host: [[s d]]_G
    grad_h = [sum((enc_d[i] * float(Hb[i, j]) for i in range(1, rows)), enc_d[0] * float(Hb[0, j]))
              for j in range(Hb.shape[1])]
    per_rows, cpu_rows = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    for grad, pub, priv in ((grad_g, pub_h, priv_h), (grad_h, pub_g, priv_g)):
        masks = [float(r) for r in rng.uniform(0, 2.0**40, len(grad))]
        masked = [g + pub.encrypt(r) for g, r in zip(grad, masks, strict=True)]
        _ = [priv.decrypt(c) - r for c, r in zip(masked, masks, strict=True)]
    per_batch, cpu_batch = time.perf_counter() - t0, time.process_time() - c0

    n_batches = len(epoch_batches(len(y), batch_size, 0, 0))
    return {"rows_timed": rows, "row_part_s": per_rows, "batch_part_s": per_batch,
            "epoch_s": per_rows * len(y) / rows + per_batch * n_batches,
            "epoch_cpu_s": cpu_rows * len(y) / rows + cpu_batch * n_batches}


def synthetic(n: int, guest_features: int, host_features: int, batches: int, key_bits: int,
              batch_size: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    rows = n if batches == 0 else min(n, batches * batch_size)
    Xg, Xh = rng.normal(size=(rows, guest_features)), rng.normal(size=(rows, host_features))
    z = Xg @ rng.normal(size=guest_features) / 5 + Xh @ rng.normal(size=host_features) / 17
    y = (z + rng.logistic(size=rows) > 0).astype(int)
    run = federated(Xg, y, Xh, None, epochs=1, batch_size=batch_size, key_bits=key_bits,
                    learning_rate=0.1, tol=None)
    return {"rows": n, "guest_features": guest_features, "host_features": host_features,
            "key_bits": key_bits, "rows_timed": rows,
            "epoch_s": run["median_epoch_s"] * n / rows, "extrapolated": rows < n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--phe-rows", type=int, default=64)
    ap.add_argument("--synthetic-batches", type=int, default=4, help="0: the full 100k epoch")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()

    Xg, y, Xh = default_credit()
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42)
    run = federated(Xg[tr], y[tr], Xh[tr], (Xg[te], Xh[te]), epochs=args.epochs,
                    batch_size=args.batch_size, key_bits=args.key_bits, learning_rate=0.15,
                    tol=None, random_state=42)
    auc, ks = fast_auc_ks(y[te], run.pop("proba"))
    baseline = phe_protocol(Xg[tr], y[tr], Xh[tr], args.key_bits, args.batch_size, args.phe_rows)
    result: dict[str, Any] = {
        "benchmark": "hetero_lr",
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version()},
        "default_credit": {"train_rows": len(tr), "test_rows": len(te), "key_bits": args.key_bits,
                           "batch_size": args.batch_size, "epochs": args.epochs, **run,
                           "test_auc": auc, "test_ks": ks},
        "phe_elementwise": {**baseline, "speedup_vs_phe_1proc": baseline["epoch_s"] / run["median_epoch_s"],
                            "speedup_vs_phe_ideal_2proc": baseline["epoch_s"] / 2 / run["median_epoch_s"],
                            "cpu_speedup_vs_phe": baseline["epoch_cpu_s"] / run["median_epoch_cpu_s"]},
    }
    if not args.skip_synthetic:
        result["synthetic"] = synthetic(100_000, 30, 300, args.synthetic_batches, 1024, args.batch_size)
    print(json.dumps(result))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()

"""Benchmark: SecureBoost, guest + host on this machine (simulation, one process pool).

Prints ONE JSON line, all measured in the same run:
- federated SecureBoost (default 2048-bit keys, depth 3, 32 bins, learning rate 0.3): seconds
  per tree (median of `--trees`), test AUC;
- XGBoost (`tree_method="hist"`, `max_bin=32`, same parameters) trained centrally on the
  joined columns: seconds per tree and test AUC;
- the same protocol without packing (`pack_bins=False`: one (G_L, H_L) pair per ciphertext):
  seconds per tree;
- the protocol's floor, the kernels of one tree alone on both cores: the guest's packed
  encryptions of every row, the host's histogram additions (every row at the root, at most
  half of them per deeper level, which is what the smaller children hold) and the guest's
  decryptions of the packed histograms; and the ratio of a federated tree to it.

Data: default_credit (../shared/data, 80/20 split, seed 42) or, with `--synthetic ROWS`, a
random binary task of ROWS training rows (and a quarter as many test rows) x
(`--guest-features` + `--host-features`) (FATE 2.x's published
figure is for 100,000 x (30 + 300) with 1024-bit keys, depth 3, 32 bins: pass
`--synthetic 100000 --key-bits 1024`).

Run: .venv/bin/python benchmarks/bench_secureboost.py [--trees 3] [--key-bits 2048]
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
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' shared data sets

from tests.support.shared_data import hetero_split  # noqa: E402
from vfl.algorithms.secureboost.binning import Bins  # noqa: E402
from vfl.algorithms.secureboost.estimator import SecureBoostClassifier, host_fit, host_predict  # noqa: E402
from vfl.algorithms.secureboost.histograms import Candidates, encrypted_histogram  # noqa: E402
from vfl.algorithms.secureboost.packing import GHLayout  # noqa: E402
from vfl.crypto import EncryptedArray, generate_keypair  # noqa: E402
from vfl.parties import simulate  # noqa: E402
from vfl.parties.executor import shared_process_pool  # noqa: E402

ROLES = {"bank": "guest", "partner": "host"}


def default_credit() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Xg, y, Xh = hetero_split("default_credit")
    return Xg.to_numpy(), y, Xh.to_numpy()


def synthetic(rows: int, guest_features: int, host_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    Xg, Xh = rng.normal(size=(rows, guest_features)), rng.normal(size=(rows, host_features))
    z = Xg[:, :5].sum(axis=1) - Xh[:, :5].sum(axis=1) + rng.logistic(size=rows)
    return Xg, (z > 0).astype(int), Xh


def federated(Xg, y, Xh, test, **params: Any) -> dict[str, Any]:
    est = SecureBoostClassifier(**params)

    def bank(ctx):
        est.fit(ctx, Xg, y)
        return est.predict_proba(ctx, test[0])[:, 1]

    def partner(ctx):
        host_predict(ctx, test[1], host_fit(ctx, Xh))

    out = simulate({"bank": (bank, {}), "partner": (partner, {})}, roles=ROLES, executor=shared_process_pool())
    seconds = [h["seconds"] for h in est.history_]
    return {"seconds_per_tree": statistics.median(seconds), "tree_seconds": [round(s, 2) for s in seconds],
            "proba": out["bank"]}


def floor(Xh: np.ndarray, n_rows: int, key_bits: int, max_depth: int, max_bin: int) -> dict[str, float]:
    """The kernels of one tree alone, on the shared pool (both cores)."""
    ex = shared_process_pool()
    rng = np.random.default_rng(1)
    layout = GHLayout.for_rows(n_rows, 1.0)
    g, h = layout.quantize(rng.uniform(-1, 1, n_rows)), layout.quantize(rng.uniform(0, 0.25, n_rows))
    public, private = generate_keypair(key_bits)
    public.encrypt(layout.encode_rows(g[:64], h[:64]), executor=ex)  # warm the workers' tables
    t = time.perf_counter()
    enc = public.encrypt(layout.encode_rows(g, h), executor=ex)
    encrypt = time.perf_counter() - t
    bins = Bins.fit(Xh, max_bin)
    codes = bins.transform(Xh)
    cs = list(enc.ciphertexts)
    t = time.perf_counter()
    encrypted_histogram(int(public.nsquare), cs, codes, bins.n_codes, ex)
    root = time.perf_counter() - t
    histograms = root * (1 + (max_depth - 1) / 2)  # the smaller children hold at most half the rows
    per = layout.per_ciphertext(key_bits)
    direct = 1 + sum(2 ** (d - 1) for d in range(1, max_depth))
    count = direct * -(-len(Candidates.of(bins, np.zeros(bins.n_features, dtype=bool))) // per)
    sample = public.encrypt(np.arange(count, dtype=np.int64), executor=ex)
    t = time.perf_counter()
    private.decrypt_encoded(EncryptedArray(public, sample.ciphertexts, 0, sample.bound), ex)
    decrypt = time.perf_counter() - t
    return {"encrypt_s": encrypt, "histograms_s": histograms, "decrypt_s": decrypt,
            "decryptions": count, "total_s": encrypt + histograms + decrypt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", type=int, default=3)
    ap.add_argument("--max-depth", type=int, default=3)
    ap.add_argument("--max-bin", type=int, default=32)
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--synthetic", type=int, default=0, help="rows of a synthetic task instead of default_credit")
    ap.add_argument("--guest-features", type=int, default=30)
    ap.add_argument("--host-features", type=int, default=300)
    ap.add_argument("--skip-unpacked", action="store_true")
    args = ap.parse_args()
    if args.synthetic:
        Xg, y, Xh = synthetic(args.synthetic + args.synthetic // 4, args.guest_features, args.host_features)
        dataset = f"synthetic {args.synthetic} x ({args.guest_features} + {args.host_features})"
        tr, te = np.arange(args.synthetic), np.arange(args.synthetic, len(y))
    else:
        Xg, y, Xh = default_credit()
        dataset = "default_credit"
        tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42)
    params = dict(n_estimators=args.trees, max_depth=args.max_depth, learning_rate=0.3, max_bin=args.max_bin)
    test = (Xg[te], Xh[te])

    floor_s = floor(Xh[tr], len(tr), args.key_bits, args.max_depth, args.max_bin)
    fed = federated(Xg[tr], y[tr], Xh[tr], test, key_bits=args.key_bits, **params)
    joined = np.hstack([Xg, Xh])
    t = time.perf_counter()
    ref = xgb.XGBClassifier(tree_method="hist", n_jobs=2, **params).fit(joined[tr], y[tr])
    xgb_s = (time.perf_counter() - t) / args.trees
    unpacked = None if args.skip_unpacked else federated(
        Xg[tr], y[tr], Xh[tr], test, key_bits=args.key_bits, pack_bins=False, **params)
    result = {
        "benchmark": "secureboost", "dataset": dataset, "train_rows": len(tr),
        "guest_features": Xg.shape[1], "host_features": Xh.shape[1], "key_bits": args.key_bits,
        "trees": args.trees, "max_depth": args.max_depth, "max_bin": args.max_bin,
        "federated_s_per_tree": round(fed["seconds_per_tree"], 2), "federated_tree_s": fed["tree_seconds"],
        "federated_auc": round(roc_auc_score(y[te], fed["proba"]), 4),
        "xgboost_s_per_tree": round(xgb_s, 4), "xgboost_auc": round(roc_auc_score(y[te], ref.predict_proba(joined[te])[:, 1]), 4),
        "ratio_to_xgboost": round(fed["seconds_per_tree"] / xgb_s, 1),
        "unpacked_s_per_tree": None if unpacked is None else round(unpacked["seconds_per_tree"], 2),
        "packing_speedup": None if unpacked is None else round(unpacked["seconds_per_tree"] / fed["seconds_per_tree"], 2),
        "floor": {k: round(v, 2) if isinstance(v, float) else v for k, v in floor_s.items()},
        "ratio_to_floor": round(fed["seconds_per_tree"] / floor_s["total_s"], 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_1m": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

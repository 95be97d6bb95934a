"""Split NN on default_credit: seconds per epoch and test AUC/KS for `he` (Paillier) and `plain`
against the centralized torch model of the same architecture and schedule; plus the label
leakage of plain mode (norm-based attack AUC) without and with the noise defense.

Both parties run in one process (simulation, threads) sharing this machine's cores through
one process pool; 80/20 split with a fixed seed. Prints one JSON line.

    .venv/bin/python benchmarks/bench_split_nn.py [--epochs 5] [--key-bits 2048]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.algorithms holds the centralized twin

from tests.algorithms.split_nn.split_nn_reference import CentralizedSplitNN, fit_centralized  # noqa: E402
from tests.support.shared_data import shuffled_80_20  # noqa: E402
from vfl.algorithms.split_nn.estimator import SplitNNClassifier, SplitNNHost, plain_initial_weights  # noqa: E402
from vfl.algorithms.split_nn.nn_spec import mlp  # noqa: E402
from vfl.algorithms.split_nn.plan import batches  # noqa: E402
from vfl.net.codec import decode  # noqa: E402
from vfl.parties import InProcessChannel, simulate  # noqa: E402
from vfl.parties.executor import shared_process_pool  # noqa: E402

ROLES = {"bank": "guest", "partner": "host"}
ADAM = {"lr": 0.01}




def models() -> tuple[Any, Any, Any]:
    torch.manual_seed(0)
    return mlp(13, [16], 8), mlp(10, [16], 8), mlp(8, [8], 1)


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    fpr, tpr, _ = roc_curve(y, p)
    return {"auc": round(float(roc_auc_score(y, p)), 4), "ks": round(float(np.max(tpr - fpr)), 4)}


def centralized(data: dict[str, np.ndarray], epochs: int, batch_size: int) -> dict[str, Any]:
    gb, hb, top = models()
    ref = CentralizedSplitNN(gb, hb, top, plain_initial_weights(0, 0, 8, 8))
    fit_centralized(ref, data["Xg"], data["Xh"], data["y"], epochs=epochs, batch_size=batch_size,
                    optimizer_kwargs=ADAM)
    p = ref.predict_proba(data["Xg_te"], data["Xh_te"])
    return {"sec_per_epoch": round(statistics.median(ref.epoch_seconds), 4), **scores(data["y_te"], p)}


def federated(data: dict[str, np.ndarray], mode: str, epochs: int, batch_size: int,
              key_bits: int, noise_scale: float = 0.0,
              channel: InProcessChannel | None = None) -> tuple[dict[str, Any], Any, Any]:
    gb, hb, top = models()
    clf = SplitNNClassifier(guest_bottom=gb, top=top, mode=mode, epochs=epochs, batch_size=batch_size,
                            optimizer_kwargs=ADAM, key_bits=key_bits, noise_scale=noise_scale)
    host = SplitNNHost(bottom=hb, optimizer_kwargs=ADAM, allow_plain=True, key_bits=key_bits)
    executor = shared_process_pool() if mode == "he" else None
    simulate({"bank": (clf.fit, {"X": data["Xg"], "y": data["y"]}),
              "partner": (host.fit, {"X": data["Xh"]})},
             roles=ROLES, executor=executor, channel=channel, timeout=3600)
    out = simulate({"bank": (clf.predict_proba, {"X": data["Xg_te"]}),
                    "partner": (host.predict, {"X": data["Xh_te"]})}, roles=ROLES)
    secs = [h["seconds"] for h in clf.history_]
    result = {"sec_per_epoch": round(statistics.median(secs), 3),
              "epoch_seconds": [round(s, 2) for s in secs],
              **scores(data["y_te"], np.asarray(out["bank"])[:, 1])}
    return result, clf, host


def norm_attack(data: dict[str, np.ndarray], noise_scale: float, batch_size: int) -> dict[str, float]:
    """The host's guess of labels from ||dL/dA|| per row (first epoch), as an AUC."""
    seen: list[tuple[str, Any]] = []
    channel = InProcessChannel(list(ROLES), taps=[
        lambda s, r, key, p: seen.append((key, decode(p))) if key.endswith("/dL_dA") else None])
    result, _, _ = federated(data, "insecure_plaintext", 1, batch_size, 1024, noise_scale, channel)
    n = len(data["y"])
    score = np.zeros(n)
    order = batches(n, batch_size, 0, 0)
    for key, value in seen:
        m = re.search(r"epoch/0/batch/(\d+)/dL_dA$", key)
        if m:
            score[order[int(m.group(1))]] = np.linalg.norm(value, axis=1)
    return {"attack_auc": round(float(roc_auc_score(data["y"], score)), 4),
            "test_auc_after_1_epoch": result["auc"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--noise-scale", type=float, default=4.0)
    ap.add_argument("--skip-he", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = shuffled_80_20("default_credit")
    ref = centralized(data, args.epochs, args.batch_size)
    plain, _, _ = federated(data, "insecure_plaintext", args.epochs, args.batch_size, args.key_bits)
    result: dict[str, Any] = {
        "benchmark": "split_nn_default_credit", "rows_train": len(data["y"]),
        "rows_test": len(data["y_te"]), "epochs": args.epochs, "batch_size": args.batch_size,
        "interactive": "8x8", "centralized": ref, "plain": plain,
        "plain_vs_centralized_epoch_time": round(plain["sec_per_epoch"] / ref["sec_per_epoch"], 2),
        "label_leakage": {
            "plain": norm_attack(data, 0.0, args.batch_size),
            f"plain_noise_{args.noise_scale:g}": norm_attack(data, args.noise_scale, args.batch_size),
        },
    }
    if not args.skip_he:
        print(f"he ({args.key_bits}-bit) training, {args.epochs} epochs...", file=sys.stderr)
        he, _, _ = federated(data, "he", args.epochs, args.batch_size, args.key_bits)
        result["he"] = {"key_bits": args.key_bits, **he}
        result["he_auc_minus_centralized"] = round(he["auc"] - ref["auc"], 4)
    result["plain_auc_minus_centralized"] = round(plain["auc"] - ref["auc"], 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

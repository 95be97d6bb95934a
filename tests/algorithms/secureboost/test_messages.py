"""Every message of SecureBoost training and prediction, decoded and inspected (one and two
hosts): every ciphertext is randomized (no trivial encryption, no two alike but the copies of
one broadcast), a host receives
no plaintext gradient, hessian, label or any other label-dependent number (only integers:
row-to-node assignments, node and split ids, row counts, decisions), and the guest receives
no host feature value or threshold (only ciphertexts, split ids, 0/1 partitions and routing
bits). The same inspector flags a plaintext gradient sent to a host and a threshold sent to
the guest (so it can fail)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.algorithms import training_kit as kit
from vfl.algorithms.secureboost.estimator import SecureBoostClassifier, host_fit, host_predict

N = 160


def make_data(widths: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
    return kit.make_blocks(widths, N, seed=5)


def run_tapped(blocks: list[np.ndarray], y: np.ndarray):
    est = SecureBoostClassifier(n_estimators=3, max_depth=2, max_bin=8, key_bits=1024, random_state=1)

    def guest(ctx):
        est.fit(ctx, blocks[0], y, X_val=blocks[0][:40], y_val=y[:40])
        return est.predict_proba(ctx, blocks[0])[:, 1]

    def host(ctx, X):
        part = host_fit(ctx, X, X_val=X[:40])
        host_predict(ctx, X, part)
        return part

    messages, parts = kit.run_tapped(guest, host, blocks)
    return messages, est, parts


def violations(messages: list[kit.Message], host_values: np.ndarray, labels: np.ndarray) -> list[str]:
    """What should not be in the traffic: plaintext non-integers (or labels) to a host; a host's
    feature value or threshold to the guest; trivial or repeated ciphertexts."""
    found: list[str] = []
    keys = kit.public_keys(messages)
    seen: dict[int, str] = {}  # ciphertext -> the step and tag it was sent under
    secret = set(np.unique(host_values).tolist())
    for sender, receiver, key, value in messages:
        tag = key.rsplit("/", 1)[1]
        for leaf in kit.leaves(value):
            if isinstance(leaf, dict) and leaf.get("kind") == "paillier.array":
                values, n = kit.ciphertexts(leaf, keys)
                for c in values:  # a broadcast sends the same ciphertexts to every host
                    if (c - 1) % n == 0 or seen.setdefault(c, key) != key:
                        found.append(f"unrandomized ciphertext in {tag} {sender}->{receiver}")
                continue
            if isinstance(leaf, dict):
                continue
            numbers = np.asarray(leaf).ravel() if isinstance(leaf, np.ndarray | int | float) else np.array([])
            if receiver != "bank":  # to a host: integers only, and never the labels
                if (isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f") or (
                        isinstance(leaf, float) and tag != "plan"):
                    found.append(f"plaintext real number in {tag} {sender}->{receiver}")
                if isinstance(leaf, np.ndarray) and leaf.shape == labels.shape and np.array_equal(leaf, labels):
                    found.append(f"labels in {tag} {sender}->{receiver}")
            elif numbers.dtype.kind in "fiu" and secret.intersection(numbers.astype(float).tolist()):
                found.append(f"a host's feature value or threshold in {tag} {sender}->{receiver}")
    return found


@pytest.mark.parametrize("n_hosts", [1, 2])
def test_traffic_reveals_no_gradient_to_hosts_and_no_threshold_to_the_guest(n_hosts):
    blocks, y = make_data([3, 4, 3][: n_hosts + 1])
    messages, est, parts = run_tapped(blocks, y)
    host_values = np.concatenate([b.ravel() for b in blocks[1:]] + [p.threshold for p in parts.values()])
    assert violations(messages, host_values, y) == []
    assert all(len(p.feature) for p in parts.values()), "every host should win a split"
    tags = {k.rsplit("/", 1)[1] for _, _, k, _ in messages}
    assert {"gh", "hist", "level", "split", "partition", "tree_end", "epoch_decision"} <= tags
    # gradients travel once per tree to each host, one ciphertext per row
    gh = [v for s, r, k, v in messages if k.endswith("/gh")]
    assert len(gh) == 3 * n_hosts and all(v["shape"] == [N] for v in gh)
    # several (G_L, H_L) pairs per histogram ciphertext: far fewer ciphertexts than split ids
    per_host = {m[0]: m[3] for m in messages if m[2].endswith("/plan_ack")}
    for s, _, k, v in messages:
        if k.endswith("/hist"):
            assert v["shape"][1] < per_host[s]["reply"]["n_candidates"] / 4


def test_the_inspector_flags_a_plaintext_gradient_and_a_threshold():
    blocks, y = make_data([3, 4])
    messages, est, parts = run_tapped(blocks, y)
    leaked = [("bank", "h1", "train/epoch/0/g", np.linspace(-0.5, 0.5, N)),
              ("h1", "bank", "train/epoch/0/threshold", float(parts["h1"].threshold[0]))]
    found = violations(messages + leaked, np.r_[blocks[1].ravel(), parts["h1"].threshold], y)
    assert found == ["plaintext real number in g bank->h1", "a host's feature value or threshold in threshold h1->bank"]

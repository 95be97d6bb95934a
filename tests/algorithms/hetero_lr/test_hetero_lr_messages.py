"""Every message of an HE logistic regression job, decoded and inspected.

Shows that neither labels, raw features, plaintext partial scores during training, nor any
party's weights cross a party boundary, that every ciphertext is randomized, and that the
values a key owner decrypts for its peer are masked. The same inspector run on an
`insecure_plaintext` job must find violations (so the inspector can fail).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.algorithms import training_kit as kit
from tests.algorithms.hetero_lr.lr_centralized import TaylorLogisticRegression
from vfl.algorithms.hetero_lr.estimator import (
    INSECURE,
    HeteroLogisticRegression,
    host_fit,
    host_predict,
)
from vfl.algorithms.optim import epoch_batches
from vfl.crypto import EncodedArray

N, BATCH, SEED = 120, 40, 4


def make_data(widths: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
    return kit.make_blocks(widths, N, seed=21)


def run_tapped(mode: str, blocks: list[np.ndarray], y: np.ndarray, class_weight: str | None = None):
    """Train + predict with a tap on the channel; returns messages, estimator, host parts."""
    est = HeteroLogisticRegression(epochs=2, batch_size=BATCH, key_bits=1024, mode=mode,
                                   learning_rate=0.3, random_state=SEED, class_weight=class_weight)

    def guest(ctx):
        est.fit(ctx, blocks[0], y)
        return est.predict_proba(ctx, blocks[0])

    def host(ctx, X):
        part = host_fit(ctx, X, policy_allows_insecure=True)
        host_predict(ctx, X, part)
        return part

    messages, parts = kit.run_tapped(guest, host, blocks)
    return messages, est, parts


def first_batch_gradients(blocks: list[np.ndarray], y: np.ndarray, balanced: bool) -> list[np.ndarray]:
    """Every party's true gradient of epoch 0, batch 0 (all weights are still zero)."""
    rows = epoch_batches(N, BATCH, SEED, 0)[0]
    s = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))[rows] if balanced else np.ones(len(rows))
    d = -np.where(y[rows] == 1, 1.0, -1.0) / 2 * s / s.sum()
    guest = np.hstack([blocks[0][rows], np.ones((len(rows), 1))])
    return [guest.T @ d] + [b[rows].T @ d for b in blocks[1:]]


def violations(messages, blocks, y, weights) -> list[str]:
    """Everything in the traffic that should not be there."""
    found = []
    labels = [y.astype(float), np.where(y == 1, 1.0, -1.0)]
    columns = [b[:, j] for b in blocks for j in range(b.shape[1])]
    secrets = [v for w in weights for v in w if abs(v) > 1e-6]
    keys = kit.public_keys(messages)
    for sender, receiver, key, value in messages:
        training = "/epoch/" in key
        tag = key.rsplit("/", 1)[1]
        for leaf in kit.leaves(value):
            floats = None
            if isinstance(leaf, np.ndarray):
                floats = leaf.astype(float).ravel()
                if training:
                    found.append(f"plaintext array in training message {tag} {sender}->{receiver}")
            elif isinstance(leaf, float):
                floats = np.array([leaf])
            elif isinstance(leaf, dict) and leaf.get("kind") == "encoded.array":
                floats = EncodedArray.from_wire(leaf).decode().ravel()
            elif isinstance(leaf, dict) and leaf.get("kind") == "paillier.array":
                values, n = kit.ciphertexts(leaf, keys)
                if any((c - 1) % n == 0 for c in values):
                    found.append(f"unrandomized ciphertext in {tag} {sender}->{receiver}")
            if floats is None:
                continue
            for ref in labels + columns:
                rows = len(floats)
                for sub in (ref, *[ref[r] for r in epoch_batches(N, BATCH, SEED, 0)]):
                    if len(sub) == rows and np.allclose(sub, floats, atol=1e-9):
                        found.append(f"labels or a feature column in {tag} {sender}->{receiver}")
            if any(np.isclose(floats, s, rtol=1e-9, atol=0).any() for s in secrets):
                found.append(f"a model weight in {tag} {sender}->{receiver}")
    return found


@pytest.mark.parametrize(("n_hosts", "class_weight"), [(1, None), (2, None), (2, "balanced")])
def test_he_traffic_reveals_nothing_and_masks_are_in_place(n_hosts, class_weight):
    blocks, y = make_data([3, 4, 2][: n_hosts + 1])
    messages, est, parts = run_tapped("he", blocks, y, class_weight)
    weights = [np.r_[est.coef_, est.intercept_], *[p.coef_ for p in parts.values()]]
    assert violations(messages, blocks, y, weights) == []
    # label-dependent row weights travel only encrypted (and only when there are any)
    assert any(k.endswith("/s_g") for _, _, k, _ in messages) == (class_weight is not None)

    # masks: what each key owner decrypts for its peer is the gradient plus a wide mask
    true = first_batch_gradients(blocks, y, class_weight == "balanced")
    hosts = list(parts)
    first = [(s, r, v) for s, r, k, v in messages if "/epoch/0/batch/0/" in k and k.endswith("_plain_masked")]
    assert len(first) == 1 + n_hosts
    for _, receiver, value in first:
        grad = true[0] if receiver == "bank" else true[1 + hosts.index(receiver)]
        seen = EncodedArray.from_wire(value).decode()
        assert seen.shape == grad.shape
        assert np.all(np.abs(seen - grad) > 1e3 * np.abs(grad).max()), "unmasked gradient decrypted"

    # the host partial scores reach the guest only at inference, as docs/protocols.md §4 says
    scores = [k for s, r, k, v in messages if k.endswith("/predict/contribution")]  # contributions protocol
    assert len(scores) == n_hosts
    ref = TaylorLogisticRegression(epochs=2, batch_size=BATCH, learning_rate=0.3, random_state=SEED,
                                   class_weight=class_weight)
    ref.fit(np.hstack(blocks), y)
    np.testing.assert_allclose(np.concatenate(weights), np.r_[ref.coef_[:3], ref.intercept_, ref.coef_[3:]],
                               atol=1e-7)


def test_inspector_catches_the_insecure_plaintext_mode():
    blocks, y = make_data([3, 4])
    messages, est, parts = run_tapped(INSECURE, blocks, y)
    found = violations(messages, blocks, y, [np.r_[est.coef_, est.intercept_], parts["h1"].coef_])
    assert any("plaintext array in training message z_h" in f for f in found)
    assert any("plaintext array in training message d" in f for f in found)

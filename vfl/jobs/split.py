"""The split stage of a job: the guest (it holds the labels) draws the test rows and tells
every host their positions in the aligned order."""

from __future__ import annotations

from typing import Any

import numpy as np

from vfl.config import SplitStep
from vfl.errors import ProtocolError
from vfl.parties.context import Context


def guest(ctx: Context, y: np.ndarray, step: SplitStep | None) -> tuple[np.ndarray, np.ndarray]:
    """Train/test positions (stratified by label unless told not to), sent to every host."""
    train, test = _split_rows(y, step)
    ctx.child("split").broadcast("test_rows", test)
    return train, test


def host(ctx: Context, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The guest's train/test positions of this host's `n_rows` aligned rows, checked."""
    test = _received_rows(ctx.child("split").recv(ctx.guest, "test_rows"), n_rows)
    return np.setdiff1d(np.arange(n_rows), test), test


def _split_rows(y: np.ndarray, split: SplitStep | None) -> tuple[np.ndarray, np.ndarray]:
    n = len(y)
    if split is None:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(split.seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if split.stratify else [np.arange(n)]
    test = np.sort(np.concatenate([
        rng.choice(g, size=int(round(len(g) * split.test_size)), replace=False) for g in groups
    ])).astype(np.int64)
    return np.setdiff1d(np.arange(n), test), test


def _received_rows(rows: Any, n: int) -> np.ndarray:
    if not isinstance(rows, np.ndarray) or rows.dtype != np.int64 or rows.ndim != 1:
        raise ProtocolError("'test_rows' from the guest must be a 1-D int64 array")
    if len(rows) and (rows.min() < 0 or rows.max() >= n or np.any(np.diff(rows) <= 0)):
        raise ProtocolError(f"'test_rows' from the guest must be sorted unique positions below {n}")
    return rows

"""Partials over a job's context: the guest asks for a chunk of ids, each host answers.

Used by the batch scoring step of a job, so it runs the same in simulation and across party
services. The host learns which ids are asked (docs/protocols.md §8); the guest
learns each host's contribution per found id, and which ids a host lacks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vfl.errors import ProtocolError
from vfl.parties.context import Context
from vfl.serving.scoring import HostScorer, Partials

MAX_IDS_PER_CHUNK = 1_000_000


def ids_to_wire(ids: pd.Series) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in ids.tolist()]


def ids_from_wire(value: Any, sender: str) -> pd.Series:
    if not isinstance(value, list) or len(value) > MAX_IDS_PER_CHUNK:
        raise ProtocolError(f"ids from '{sender}' must be a list of at most {MAX_IDS_PER_CHUNK} ids")
    if not all(isinstance(v, int | str) and not isinstance(v, bool) for v in value):
        raise ProtocolError(f"ids from '{sender}' must be integers or strings")
    return pd.Series(value)


def partials_from_wire(value: Any, n_ids: int, sender: str) -> Partials:
    if not isinstance(value, dict) or set(value) != {"values", "found"}:
        raise ProtocolError(f"partials from '{sender}' must be {{values, found}}")
    values, found = value["values"], value["found"]
    if not (isinstance(found, np.ndarray) and found.dtype == np.bool_ and found.shape == (n_ids,)):
        raise ProtocolError(f"partials from '{sender}': 'found' must be {n_ids} booleans")
    if not (isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim == 2
            and len(values) == int(found.sum()) and np.isfinite(values).all()):
        raise ProtocolError(f"partials from '{sender}': 'values' must be finite float64 rows, one per found id")
    return Partials(values, found)


class ContextHost:
    """A HostClient that reaches a host through the job's context (guest side)."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx = ctx
        self.name = name
        self._chunk = 0

    def partials(self, ids: pd.Series) -> Partials:
        step = self.ctx.child("chunk", self._chunk)
        self._chunk += 1
        step.send(self.name, "ids", ids_to_wire(ids))
        return partials_from_wire(step.recv(self.name, "partials"), len(ids), self.name)

    def finish(self) -> None:
        """Tell the host there are no more chunks."""
        self.ctx.child("chunk", self._chunk).send(self.name, "ids", None)


def serve_partials(ctx: Context, scorer: HostScorer) -> int:
    """Host side: answer chunks until the guest says it is done; returns the chunk count."""
    chunk = 0
    while True:
        step = ctx.child("chunk", chunk)
        wire = step.recv(ctx.guest, "ids")
        if wire is None:
            return chunk
        answer = scorer.partials(ids_from_wire(wire, ctx.guest))
        step.send(ctx.guest, "partials", {"values": np.ascontiguousarray(answer.values, np.float64),
                                          "found": answer.found})
        chunk += 1

"""Split inference: each host computes its part from its own features; the guest merges.

The host answers "your part for these ids" (`HostScorer.partials`) with a flag per id it could
not find; the guest asks every host in parallel, adds its own part and returns one row per id:
the score, or no score and the names of the hosts that lacked the id. Nothing is ever scored
from made-up values. The same path serves one online request and every chunk of a batch job
(`vfl.serving.batch`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from vfl.errors import DataError, PeerError
from vfl.serving.bundle import ModelBundle
from vfl.serving.features import FeatureSource, conform_ids

log = logging.getLogger("vfl.serving")


@dataclass
class Partials:
    """A host's answer: contributions (n_found, k) for the found ids, and the found flags (n,)."""

    values: np.ndarray
    found: np.ndarray


class HostScorer:
    """The host's side: look the ids up in its own source, preprocess, apply its own part."""

    def __init__(self, bundle: ModelBundle, source: FeatureSource) -> None:
        if bundle.role != "host":
            raise DataError(f"HostScorer needs a host bundle, got a {bundle.role} one")
        self.bundle = bundle
        self.source = source

    def partials(self, ids: pd.Series) -> Partials:
        lookup = self.source.lookup(ids)
        if not lookup.found.any():
            return Partials(np.zeros((0, 1)), lookup.found)
        return Partials(self.bundle.part.contribution(self.bundle.features(lookup.X)), lookup.found)


class HostClient(Protocol):
    """How the guest reaches one host's partials: in process, or the host's service over gRPC."""

    name: str

    def partials(self, ids: pd.Series) -> Partials: ...


class LocalHost:
    """A host scorer called directly (simulation, tests, single-process batch jobs)."""

    def __init__(self, name: str, scorer: HostScorer) -> None:
        self.name = name
        self.scorer = scorer

    def partials(self, ids: pd.Series) -> Partials:
        return self.scorer.partials(ids)


class GuestScorer:
    """The guest's side: its own features (given or looked up) + every host's partials."""

    def __init__(self, bundle: ModelBundle, hosts: Sequence[HostClient],
                 source: FeatureSource | None = None, on_host_error: str = "error") -> None:
        if bundle.role != "guest":
            raise DataError(f"GuestScorer needs a guest bundle, got a {bundle.role} one")
        if on_host_error not in ("error", "missing"):
            raise DataError(f"on_host_error must be 'error' or 'missing', not {on_host_error!r}")
        self.bundle = bundle
        self.hosts = sorted(hosts, key=lambda h: h.name)  # a guest part takes contributions in name order
        self.source = source
        self.on_host_error = on_host_error
        # room for concurrent requests (online) to call every host at the same time
        self._pool = ThreadPoolExecutor(max(1, 16 * len(self.hosts)), thread_name_prefix="vfl-host-call")

    def score(self, ids: pd.Series | Sequence[object], features: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per id: `score` (NaN when not scorable), `missing` (who lacked the id).

        A failing host raises PeerError (naming it), or with ``on_host_error="missing"`` its
        ids are reported missing and its error is kept in ``result.attrs["host_errors"]``.
        """
        ids = pd.Series(ids).reset_index(drop=True)
        if self.source is not None:
            ids = conform_ids(ids, self.source.id_kind)
        calls = {h.name: self._pool.submit(_ask, h, ids) for h in self.hosts}
        if features is None:
            if self.source is None:
                raise DataError("no guest features in the request and no guest feature source configured")
            lookup = self.source.lookup(ids)
            guest_found, guest_rows = lookup.found, lookup.X
        else:
            if len(features) != len(ids):
                raise DataError(f"{len(features)} feature rows for {len(ids)} ids")
            guest_found, guest_rows = np.ones(len(ids), dtype=bool), features.reset_index(drop=True)
        answers, errors = {}, {}
        for name, call in calls.items():
            try:
                answers[name] = call.result()
            except PeerError as exc:
                if self.on_host_error == "error":
                    raise
                log.warning("host '%s' failed; its ids are reported missing: %s", name, exc)
                errors[name] = str(exc)
                answers[name] = Partials(np.zeros((0, 1)), np.zeros(len(ids), dtype=bool))

        ok = guest_found.copy()
        for ans in answers.values():
            ok &= ans.found
        X = self.bundle.features(guest_rows)[ok[guest_found]] if ok.any() else None
        contributions = [ans.values[ok[ans.found]] for ans in answers.values()]
        scores = np.full(len(ids), np.nan)
        if X is not None:
            scores[ok] = self.bundle.part.predict_proba(X, contributions)
        missing = [""] * len(ids)
        for i in np.flatnonzero(~ok):
            missing[i] = ",".join(([] if guest_found[i] else ["guest"]) +
                                  [name for name, ans in answers.items() if not ans.found[i]])
        result = pd.DataFrame({"id": ids, "score": scores, "missing": missing})
        result.attrs["host_errors"] = errors
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _ask(host: HostClient, ids: pd.Series) -> Partials:
    answer = host.partials(ids)
    if answer.found.shape != (len(ids),) or answer.found.dtype != bool:
        raise PeerError(f"host '{host.name}' answered {answer.found.shape} found flags for {len(ids)} ids")
    if answer.values.ndim != 2 or len(answer.values) != int(answer.found.sum()):
        raise PeerError(f"host '{host.name}' answered {answer.values.shape} partials "
                        f"for {int(answer.found.sum())} found ids")
    return answer

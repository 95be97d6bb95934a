"""The PSI stage of a job: each party aligns its own dataset's ids (`vfl.psi.ecdh`)."""

from __future__ import annotations

from typing import Any

from vfl.config import PsiStep
from vfl.connectors import Dataset
from vfl.parties.context import Context
from vfl.parties.runtime import PartyRuntime
from vfl.psi import ecdh


def normalization(dataset: Dataset) -> dict[str, Any] | None:
    """The dataset's id normalisation for PSI (the same on every party, or PSI refuses)."""
    norm = dataset.spec.id_normalize
    return None if norm is None else norm.model_dump()


def guest(ctx: Context, dataset: Dataset, step: PsiStep) -> ecdh.PsiResult:
    return ecdh.guest(ctx.child("psi"), dataset.ids, cardinality_only=step.cardinality_only,
                      normalize_ids=normalization(dataset), warn_ratio=step.warn_ratio)


def host(ctx: Context, party: PartyRuntime, dataset: Dataset) -> ecdh.PsiResult:
    return ecdh.host(ctx.child("psi"), dataset.ids, normalize_ids=normalization(dataset),
                     min_intersection=party.config.policy.min_intersection)

"""Serving: each party's model store, online split inference and batch scoring; see docs/serving.md.

The names load on first use (gRPC and the models' libraries are imported only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vfl.lazy import lazy_exports

if TYPE_CHECKING:
    from vfl.serving.client import ScoringClient
    from vfl.serving.online import batch_score
    from vfl.store.models import ModelStore

_EXPORTS = {
    "ModelStore": "vfl.store.models",
    "ScoringClient": "vfl.serving.client",
    "batch_score": "vfl.serving.online",
}
__all__ = ["ModelStore", "ScoringClient", "batch_score"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

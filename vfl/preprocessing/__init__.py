"""Each party's own preprocessing: the configured pipeline, the schema it enforces, WOE/IV.

``PartyPreprocessor`` (a scikit-learn transformer built from a ``PreprocessingConfig``) fits on a
party's training rows and replays exactly at scoring; ``Schema`` is what it learned about the
columns; ``vfl.preprocessing.woe`` computes WOE/IV across parties without moving labels. See
docs/preprocessing.md. The names load on first use (scikit-learn is imported only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vfl.lazy import lazy_exports

if TYPE_CHECKING:
    from vfl.preprocessing.preprocessor import (
        PartyPreprocessor,
        PreprocessingConfig,
        QuantileClipper,
    )
    from vfl.preprocessing.schema import Schema
    from vfl.preprocessing.woe import WoeReport

_EXPORTS = {
    "PartyPreprocessor": "vfl.preprocessing.preprocessor",
    "PreprocessingConfig": "vfl.preprocessing.preprocessor",
    "QuantileClipper": "vfl.preprocessing.preprocessor",
    "Schema": "vfl.preprocessing.schema",
    "WoeReport": "vfl.preprocessing.woe",
}
__all__ = ["PartyPreprocessor", "PreprocessingConfig", "QuantileClipper", "Schema", "WoeReport"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)

"""Lazy exports: a package names what it offers without importing it until first use.

A package's ``__init__`` lists ``{name: module}`` and installs the pair this returns as its
module-level ``__getattr__`` and ``__dir__`` (PEP 562), so ``from vfl import SplitNNClassifier``
imports torch while ``import vfl.cli`` does not.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str],
                 eager: list[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose `exports` load on first access.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (for the error message).
    exports : dict of str to str
        Each lazily exported name and the module that defines it.
    eager : list of str
        Names the package defines itself (listed by ``dir()`` too).

    Returns
    -------
    tuple of callable
        ``(__getattr__, __dir__)`` to assign at the package's module level.

    Raises
    ------
    AttributeError
        From the returned ``__getattr__``, for a name the package does not export.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted({*eager, *exports})

    return __getattr__, __dir__

"""Training algorithms a job can name, by name.

An algorithm is a class decorated with ``@register_algorithm("name")`` that implements
`Algorithm`: how the guest checks and fits the job's params, how a host fits and answers a
predict request from its own settings, and the types of the model parts the stores keep. The
job config, the train step, the model bundle and the CLI learn the algorithms from here, so
adding one is one module plus its registration. The built-in modules are imported on the
first lookup (the split NN's entry imports torch only when it trains or serves); other modules
register themselves when imported (a party config's ``plugins``, or a test).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import numpy as np

from vfl.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from vfl.parties.context import Context

BUILTIN = ("vfl.algorithms.hetero_lr.algorithm", "vfl.algorithms.split_nn.algorithm",
           "vfl.algorithms.secureboost.algorithm")
"""Modules that register the algorithms every installation offers."""


@dataclass(frozen=True)
class HostSettings:
    """What a host trains with besides the guest's plan: its own settings, never the guest's.

    Parameters
    ----------
    model : dict or None
        The host's own model settings for this algorithm (its party config's ``models``).
    where : str
        Where those settings are, for error messages.
    allow_insecure : bool
        Whether the host's policy allows an unencrypted training mode.
    """

    model: dict[str, Any] | None
    where: str
    allow_insecure: bool


class GuestEstimator(Protocol):
    """What the guest's fitted estimator offers the job: its servable part and its scores."""

    part_: Any
    key_bits: int
    """Paillier key size for the job's encrypted steps besides training (e.g. the IV)."""

    def predict_proba(self, ctx: Context, X: np.ndarray) -> np.ndarray: ...


class Algorithm(Protocol):
    """One training algorithm, both sides."""

    accepts_key_bits: ClassVar[bool]
    """Whether ``--key-bits`` may lower its key size (a ``key_bits`` param of the guest)."""

    def check_params(self, params: dict[str, Any]) -> None:
        """Raise ConfigError naming the key for an unknown key or a bad value, without data."""

    def guest_fit(self, ctx: Context, params: dict[str, Any], X: np.ndarray, y: np.ndarray,
                  checkpoint_dir: Path) -> GuestEstimator:
        """Train as the guest with the job's params; the hosts take part."""

    def host_fit(self, ctx: Context, X: np.ndarray, settings: HostSettings,
                 checkpoint_dir: Path) -> Any:
        """Train as a host; return this host's model part (it has ``contribution(X)``)."""

    def host_predict(self, ctx: Context, X: np.ndarray, part: Any) -> None:
        """Answer one predict request of the guest with this host's contribution."""

    def part_type(self, role: str) -> Any:
        """The class of the model part of `role` ("guest" or "host"), with ``load(directory)``."""


A = TypeVar("A", bound=type)

_entries: dict[str, Algorithm] = {}
_lock = threading.Lock()
_builtin_loaded = False


def register_algorithm(name: str) -> Callable[[A], A]:
    """Decorator: make the class an algorithm a job can name as ``steps.train.algorithm``.

    Parameters
    ----------
    name : str
        The algorithm's name in job configs and model bundles.

    Raises
    ------
    ValueError
        When another class already registered `name`.
    """

    def deco(cls: A) -> A:
        with _lock:
            known = _entries.get(name)
            if known is not None and type(known) is not cls:
                raise ValueError(f"algorithm '{name}' is already registered by {type(known)!r}")
            _entries[name] = cls()
        return cls

    return deco


def _load_builtin() -> None:
    global _builtin_loaded
    if not _builtin_loaded:
        for module in BUILTIN:
            importlib.import_module(module)
        _builtin_loaded = True


def names() -> list[str]:
    """Every registered algorithm's name, sorted."""
    _load_builtin()
    with _lock:
        return sorted(_entries)


def get(name: str, where: str = "steps.train.algorithm") -> Algorithm:
    """The algorithm registered as `name`.

    Raises
    ------
    ConfigError
        Naming `where` and the known algorithms when `name` is not registered.
    """
    _load_builtin()
    with _lock:
        if name not in _entries:
            raise ConfigError(f"{where}: '{name}' is not available{did_you_mean(name, list(_entries))} "
                              f"(known: {', '.join(sorted(_entries))})")
        return _entries[name]


def known_keys(params: dict[str, Any], keys: Iterable[str]) -> None:
    """Refuse a key of `params` not in `keys`, with the closest known one."""
    known = list(keys)
    for key in params:
        if key not in known:
            raise ConfigError(f"unknown parameter {key!r}{did_you_mean(key, known)} "
                              f"(known: {', '.join(sorted(known))})")

"""What every training session shares, whatever the algorithm: the epoch loop, the names of
its modes and of early stopping, and its checkpoints. How a session starts (plan, the host's
policy, the resume agreement, the handshake) and decides each epoch is
`vfl.algorithms.session_start`, which runs this loop.

Every party of every algorithm walks its epochs with `run_epochs`: epoch ``e`` runs in the
child context ``epoch/e``; the algorithm trains it and decides (the guest with
`vfl.algorithms.validation.EpochValidator`, a host by the guest's decision), the skeleton
times it, lets the algorithm record and checkpoint it, reports progress, logs one line and
stops when the epoch says so. What crosses the wire stays in each algorithm's protocol module.

Every algorithm trains in mode ``he`` (encrypted) or ``insecure_plaintext`` (nothing
encrypted; a host trains so only when its own policy allows insecure modes), and stops early
on ``early_stopping: auc`` or ``ks`` (None: never). The older spellings (split NN's
``mode: plain``, hetero LR's ``early_stopping: true`` with ``validation_metric``) still work
and warn with the new one.

A party's training state (nested dicts and lists of numbers, strings and arrays) is saved
after every epoch through the one checkpoint format (`vfl.algorithms.checkpoint`: arrays in
``.npz``, the rest in ``.json``, each written to a temporary file, fsynced and renamed), and
tagged with the plan's fingerprint: a directory that holds another plan's epochs is refused,
never silently mixed in. Per-epoch validation and the early-stopping decision are
`vfl.algorithms.validation.EpochValidator`'s.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vfl.algorithms.checkpoint import EpochCheckpoints
from vfl.errors import ConfigError, did_you_mean
from vfl.parties.progress import REPEATS_PROGRESS

if TYPE_CHECKING:
    from vfl.parties.context import Context

HE = "he"
INSECURE = "insecure_plaintext"
MODES = (HE, INSECURE)
STOPPING_METRICS = ("auc", "ks")
OLD_MODES = {"plain": INSECURE}

ARRAY = "__array__"  # a JSON leaf that names an array of the epoch's .npz
PAIRS = "__pairs__"  # a dict whose keys are not all strings (e.g. a torch optimizer's state)


@dataclass
class EpochOutcome:
    """What one epoch of one party ended with.

    Parameters
    ----------
    record : dict
        What the epoch reports (progress and the log line show its numbers); the skeleton
        adds ``seconds``.
    stop : bool
        Whether training ends after this epoch (converged, or stopped early).
    best : bool, default False
        Whether this epoch is the best so far (its state is the one early stopping keeps).
    """

    record: dict[str, Any]
    stop: bool
    best: bool = False


def run_epochs(ctx: Context, epochs: range, total: int, train: Callable[[Context, int], EpochOutcome],
               end: Callable[[int, dict[str, Any]], None], label: str, report: bool = True) -> None:
    """The epoch loop of a training session, the same for every party and algorithm.

    Parameters
    ----------
    ctx : Context
        The party's training context; epoch ``e`` runs in ``ctx.child("epoch", e)``.
    epochs : range
        The epochs to run (after a resume, from the one after the agreed checkpoint).
    total : int
        The plan's number of epochs (for progress).
    train : callable
        ``train(epoch_ctx, e)`` trains epoch ``e``, exchanges its decision, returns its outcome.
    end : callable
        ``end(e, record)`` keeps the epoch's record and saves its checkpoint.
    label : str
        How the log line names the session, e.g. ``hetero LR [he]``.
    report : bool
        Whether this party reports and logs each epoch (a split NN host shows batches only).
    """
    for epoch in epochs:
        t0 = time.perf_counter()
        outcome = train(ctx.child("epoch", epoch), epoch)
        outcome.record["seconds"] = time.perf_counter() - t0
        end(epoch, outcome.record)
        if report:
            ctx.progress(epoch + 1, total, unit="epochs", **outcome.record)
            shown = " ".join(f"{k}={v:.4g}" for k, v in outcome.record.items()
                             if isinstance(v, float) and k != "epoch")
            ctx.log.info(f"{label} epoch {epoch + 1}/{total}: {shown}", extra=REPEATS_PROGRESS)
        if outcome.stop:
            break


def training_mode(mode: str) -> str:
    """The mode's one name (an old spelling warns with it).

    Raises
    ------
    ConfigError
        For a mode that is neither.
    """
    if mode in OLD_MODES:
        warnings.warn(f"mode: '{mode}' is deprecated; use mode: {OLD_MODES[mode]}",
                      DeprecationWarning, stacklevel=3)
        return OLD_MODES[mode]
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}{did_you_mean(str(mode), MODES)}")
    return mode


def early_stopping(value: str | bool | None, metric: str = "auc") -> str | None:
    """The validation metric to stop early on, or None (the old bool spelling warns; it stops
    on `metric`).

    Raises
    ------
    ConfigError
        For anything else.
    """
    if isinstance(value, bool):
        new = metric if value else "null"
        warnings.warn(f"early_stopping: {str(value).lower()} is deprecated; use early_stopping: {new} "
                      f"(one of {STOPPING_METRICS} or null)", DeprecationWarning, stacklevel=3)
        return metric if value else None
    if value is not None and value not in STOPPING_METRICS:
        raise ConfigError(f"early_stopping must be null or one of {STOPPING_METRICS}, got {value!r}")
    return value


class SessionCheckpoints:
    """One party's per-epoch training state for one plan, in its own directory.

    Parameters
    ----------
    directory : str or Path
        The party's own checkpoint directory (created private).
    fingerprint : str
        Identifies the plan; epochs saved under another plan make this a ConfigError.

    Raises
    ------
    ConfigError
        When `directory` holds the checkpoints of another plan.
    """

    def __init__(self, directory: str | Path, fingerprint: str) -> None:
        self.files = EpochCheckpoints(directory)
        self.directory = self.files.directory
        self.fingerprint = fingerprint
        last = self.files.latest()
        if last >= 0 and self.files.load(last)[1].get("plan") != fingerprint:
            raise ConfigError(f"checkpoint directory {self.directory} holds another job (different plan); "
                              "use a new directory or remove it")

    def epochs(self) -> list[int]:
        """The completed epochs on disk, ascending."""
        return self.files.epochs()

    def latest(self) -> int:
        """The last completed epoch, -1 when there is none."""
        return self.files.latest()

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Save `state` as epoch `epoch` (complete only once both files are renamed in place)."""
        arrays: dict[str, np.ndarray] = {}
        tree = _pack(state, arrays)
        self.files.save(epoch, arrays, {"plan": self.fingerprint, "epoch": epoch, "state": tree})

    def load(self, epoch: int) -> dict[str, Any]:
        """The state saved as epoch `epoch`."""
        arrays, meta = self.files.load(epoch)
        state: dict[str, Any] = _unpack(meta["state"], arrays)
        return state

    def discard_after(self, epoch: int) -> None:
        """Drop epochs newer than the one the parties agreed to resume from (-1: all)."""
        self.files.discard_after(epoch)


def _pack(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {ARRAY: key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and ARRAY not in value and PAIRS not in value:
            return {k: _pack(v, arrays) for k, v in value.items()}
        return {PAIRS: [[_pack(k, arrays), _pack(v, arrays)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [_pack(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"checkpoint state cannot hold a {type(value).__name__}")


def _unpack(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {ARRAY}:
            return arrays[tree[ARRAY]]
        if set(tree) == {PAIRS}:
            return {_unpack(k, arrays): _unpack(v, arrays) for k, v in tree[PAIRS]}
        return {k: _unpack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unpack(v, arrays) for v in tree]
    return tree

"""The context a protocol role runs in: who it is, who its peers are, and tagged messaging.

Protocol code sees only this: `ctx.send(peer, tag, obj)` / `ctx.recv(peer, tag)`. Whether the
bytes travel through an in-process mailbox or a gRPC stream is the channel's business.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from vfl.errors import CodecError, PeerError, PeerTimeoutError, ProtocolError
from vfl.net import codec

GUEST = "guest"
HOST = "host"
ROLES = (GUEST, HOST)
DEFAULT_TIMEOUT = 600.0
T = TypeVar("T")


class Channel(Protocol):
    """Moves encoded messages between parties; keys are already scoped by job and step."""

    def send(self, sender: str, receiver: str, key: str, payload: bytes) -> None: ...

    def recv(self, receiver: str, sender: str, key: str, timeout: float) -> bytes: ...


@dataclass(frozen=True)
class ProgressEvent:
    """`done` of `total` units of `step` at `party`; `info` holds the unit and figures to show."""

    party: str
    job_id: str
    step: str
    done: int
    total: int
    info: dict[str, Any]


if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # subscriptable at runtime only from Python 3.11
    _LoggerAdapter = logging.LoggerAdapter


class _StepLogger(_LoggerAdapter):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra['party']} {extra['job']} {extra['step']}] {msg}", kwargs


@dataclass(frozen=True)
class Context:
    """One party's view of one job (or one step of it: see `child`).

    A role function gets one as its first argument, from `simulate` or a party service, and
    talks to its peers only through it (`send`, `recv`, `broadcast`).

    Parameters
    ----------
    name : str
        This party.
    job_id : str
        The job; every message tag is scoped by it and by `scope`.
    roles : dict of str to str
        Every party of the job and its role ("guest" or "host"); exactly one guest.
    channel : Channel
        The transport (in-process in a simulation, gRPC between services).
    scope : tuple of str, default ()
        The step this context belongs to.
    timeout : float
        Seconds `recv` waits by default.
    executor : Executor or None, default None
        The process pool for this party's crypto.
    on_progress : callable or None, default None
        Receives `progress` events.
    max_message_bytes : int
        The largest encoded message sent or accepted.

    Raises
    ------
    ValueError
        `name` is not in `roles`, a role is unknown, or there is not exactly one guest.
    """

    name: str
    job_id: str
    roles: dict[str, str]
    channel: Channel
    scope: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    executor: Executor | None = None
    on_progress: Callable[[ProgressEvent], None] | None = None
    max_message_bytes: int = codec.DEFAULT_MAX_BYTES
    _logger: logging.Logger = field(default_factory=lambda: logging.getLogger("vfl.party"))

    def __post_init__(self) -> None:
        if self.name not in self.roles:
            raise ValueError(f"party '{self.name}' is not among the job's parties {sorted(self.roles)}")
        bad = {p: r for p, r in self.roles.items() if r not in ROLES}
        if bad:
            raise ValueError(f"unknown roles {bad}; roles are {ROLES}")
        if list(self.roles.values()).count(GUEST) != 1:
            raise ValueError(f"a job needs exactly one guest, got roles {self.roles}")

    # --- who is who ---------------------------------------------------------------------
    @property
    def role(self) -> str:
        return self.roles[self.name]

    @property
    def peers(self) -> dict[str, str]:
        return {p: r for p, r in self.roles.items() if p != self.name}

    @property
    def guest(self) -> str:
        return next(p for p, r in self.roles.items() if r == GUEST)

    @property
    def hosts(self) -> list[str]:
        return [p for p, r in self.roles.items() if r == HOST]

    @property
    def step(self) -> str:
        return "/".join(self.scope) or "-"

    def child(self, *parts: object) -> Context:
        """A context for a sub-step: its tags can never mix with the parent's or a sibling's."""
        return replace(self, scope=self.scope + tuple(str(p) for p in parts))

    # --- messaging ----------------------------------------------------------------------
    def _key(self, tag: str) -> str:
        return f"{self.job_id}/{self.step}/{tag}"

    def _check_peer(self, peer: str) -> None:
        if peer not in self.peers:
            raise ProtocolError(
                f"'{peer}' is not a peer of '{self.name}' in job '{self.job_id}' "
                f"(peers: {sorted(self.peers)})"
            )

    def send(self, peer: str, tag: str, obj: Any) -> None:
        """Send a codec value (numbers, strings, arrays, dicts, lists; never pickled) to a peer.

        Parameters
        ----------
        peer : str
            A party of the job other than this one.
        tag : str
            The message's name within this step.
        obj : Any
            The value.

        Raises
        ------
        ProtocolError
            `peer` is not a peer of this party in the job.
        CodecError
            `obj` is not a codec value or its encoding exceeds `max_message_bytes`.
        """
        self._check_peer(peer)
        payload = codec.encode(obj, self.max_message_bytes)
        self.channel.send(self.name, peer, self._key(tag), payload)

    def recv(self, peer: str, tag: str, timeout: float | None = None) -> Any:
        """Wait for the value `peer` sent under `tag` at this step.

        Parameters
        ----------
        peer : str
            A party of the job other than this one.
        tag : str
            The message's name within this step.
        timeout : float or None, default None
            Seconds to wait; None uses the context's `timeout`.

        Returns
        -------
        Any
            The decoded value (validate it before use: it comes from another organization).

        Raises
        ------
        ProtocolError
            `peer` is not a peer of this party in the job.
        PeerTimeoutError
            Nothing arrived in time.
        PeerError
            The peer failed or went away.
        CodecError
            The message is malformed.
        """
        self._check_peer(peer)
        wait = self.timeout if timeout is None else timeout
        where = f"'{tag}' from peer '{peer}' at step '{self.step}' of job '{self.job_id}'"
        try:
            payload = self.channel.recv(self.name, peer, self._key(tag), wait)
        except PeerTimeoutError:
            raise
        except TimeoutError as exc:
            raise PeerTimeoutError(f"{self.name}: timed out after {wait:g}s waiting for {where}") from exc
        except PeerError as exc:
            raise PeerError(f"{self.name}: while waiting for {where}: {exc}") from exc
        try:
            return codec.decode(payload, self.max_message_bytes)
        except CodecError as exc:
            raise CodecError(f"{self.name}: malformed message {where}: {exc}") from exc

    def broadcast(self, tag: str, obj: Any, to: list[str] | None = None) -> None:
        """Send the same value to several peers (all hosts by default), encoding it once."""
        payload = codec.encode(obj, self.max_message_bytes)
        for peer in self.hosts if to is None else to:
            self._check_peer(peer)
            self.channel.send(self.name, peer, self._key(tag), payload)

    # --- observability ------------------------------------------------------------------
    @property
    def log(self) -> _LoggerAdapter:
        return _StepLogger(self._logger, {"party": self.name, "job": self.job_id, "step": self.step})

    def progress(self, done: int, total: int, **info: Any) -> None:
        """Report progress of the current step to whoever watches (CLI bar, job record)."""
        if self.on_progress is not None:
            self.on_progress(ProgressEvent(self.name, self.job_id, self.step, done, total, info))

    def each_batch(self, batches: Sequence[T], epoch: int, epochs: int) -> Iterator[tuple[int, T]]:
        """``enumerate(batches)`` of epoch `epoch` (0-based), reporting its start and every
        finished batch."""
        self.progress(0, len(batches), unit="batches", epoch=epoch + 1, epochs=epochs)
        for b, batch in enumerate(batches):
            yield b, batch
            self.progress(b + 1, len(batches), unit="batches", epoch=epoch + 1, epochs=epochs)


def new_job_id(prefix: str = "job") -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}"

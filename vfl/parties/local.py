"""Simulation: every party's role in its own thread, messages through in-process mailboxes.

The bytes still go through the wire codec, so a protocol that runs here runs unchanged over
gRPC, and tests can inspect exactly what each party would receive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from vfl.errors import PeerError
from vfl.parties.context import DEFAULT_TIMEOUT, Context, ProgressEvent, new_job_id
from vfl.parties.mailbox import Mailbox

Tap = Callable[[str, str, str, bytes], None]
"""Observer of every message: (sender, receiver, key, payload)."""

RoleFn = Callable[..., Any]


class InProcessChannel:
    """Mailboxes in one process; `taps` see every message (for message-inspection tests)."""

    def __init__(self, parties: list[str], taps: list[Tap] | None = None) -> None:
        self.mailboxes = {p: Mailbox(p) for p in parties}
        self.taps = list(taps or [])
        self.bytes_sent: dict[str, int] = dict.fromkeys(parties, 0)
        self._lock = threading.Lock()

    def send(self, sender: str, receiver: str, key: str, payload: bytes) -> None:
        for tap in self.taps:
            tap(sender, receiver, key, payload)
        with self._lock:
            self.bytes_sent[sender] += len(payload)
        self.mailboxes[receiver].put(sender, key, payload)

    def recv(self, receiver: str, sender: str, key: str, timeout: float) -> bytes:
        return self.mailboxes[receiver].get(sender, key, timeout)

    def fail_party(self, party: str, reason: str) -> None:
        """A party died: everyone waiting for it hears so now, not after a timeout."""
        for name, box in self.mailboxes.items():
            if name != party:
                box.fail_peer(party, reason)


def simulate(
    parties: dict[str, tuple[RoleFn, dict[str, Any]]],
    roles: dict[str, str],
    *,
    job_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    executor: Executor | None = None,
    channel: InProcessChannel | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> dict[str, Any]:
    """Run `fn(ctx, **kwargs)` for every party in its own thread; return each party's result.

    Parameters
    ----------
    parties : dict of str to (callable, dict)
        Each party's role function and its keyword arguments.
    roles : dict of str to str
        Each party's role, "guest" or "host" (the same keys as `parties`).
    job_id : str or None, default None
        The job id every context carries; None makes a fresh ``sim-...`` id.
    timeout : float
        Seconds a party waits for a message before it fails.
    executor : Executor or None, default None
        The process pool the parties' crypto runs on; None uses the shared one.
    channel : InProcessChannel or None, default None
        The channel between the parties; None makes one (pass one to inspect the messages).
    on_progress : callable or None, default None
        Receives every party's progress events.

    Returns
    -------
    dict of str to Any
        What each party's function returned, by party name.

    Raises
    ------
    ValueError
        `parties` and `roles` name different parties.
    Exception
        If a role raises, its peers are released at once and the first failure is re-raised
        (the root cause, not the peers' consequent "peer failed" errors).
    """
    if set(parties) != set(roles):
        raise ValueError(f"parties {sorted(parties)} and roles {sorted(roles)} differ")
    channel = channel or InProcessChannel(list(parties))
    job = job_id or new_job_id("sim")
    results: dict[str, Any] = {}
    failures: list[tuple[str, BaseException]] = []
    lock = threading.Lock()

    def run(name: str, fn: RoleFn, kwargs: dict[str, Any]) -> None:
        ctx = Context(
            name=name, job_id=job, roles=dict(roles), channel=channel, timeout=timeout,
            executor=executor, on_progress=on_progress,
        )
        try:
            results[name] = fn(ctx, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            with lock:
                failures.append((name, exc))
            channel.fail_party(name, f"{type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=run, args=(name, fn, kw), name=f"vfl-{name}", daemon=True)
        for name, (fn, kw) in parties.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        root = next((f for f in failures if not isinstance(f[1], PeerError)), failures[0])
        raise root[1]
    return results

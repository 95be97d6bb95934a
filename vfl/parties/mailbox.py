"""A party's inbox: tagged messages from peers, waited for by key, delivered at most once.

Both the in-process channel and the gRPC service deliver into a Mailbox, so the waiting,
timeout, duplicate and failure semantics are the same in simulation and across the internet.
A service's mailboxes are bounded: the bytes a peer has pending (arrived or arriving, not yet
read) and the bytes of the whole job may not exceed the party's limits; a peer that pushes
more fails the job with MailboxFullError naming it and the message's tag, and the pending
messages are dropped at once.
"""

from __future__ import annotations

import threading
from collections import deque

from vfl.errors import MailboxFullError, PeerError


class Mailbox:
    """Messages for one party, FIFO per (sender, key).

    A message id seen before is dropped (a retried send is never applied twice). A sender
    marked failed wakes everyone waiting for it with a PeerError instead of a long timeout.
    """

    def __init__(self, owner: str, peer_bytes: int | None = None, job_bytes: int | None = None) -> None:
        self.owner = owner
        self.peer_bytes = peer_bytes
        self.job_bytes = job_bytes
        self._queues: dict[tuple[str, str], deque[bytes]] = {}
        self._seen_ids: set[str] = set()
        self._failed: dict[str, str] = {}
        self._pending: dict[str, int] = {}  # per sender: bytes admitted and not yet read
        self._overflow: str | None = None
        self._cond = threading.Condition()

    def admit(self, sender: str, key: str, nbytes: int) -> None:
        """Count a message of `nbytes` against the limits before it arrives (see `release`).

        Over a limit, the mailbox breaks: pending messages are dropped and every wait, admit
        and `check` raises MailboxFullError naming `sender` and `key`.
        """
        with self._cond:
            self.check()
            peer_total = self._pending.get(sender, 0) + nbytes
            job_total = sum(self._pending.values()) + nbytes
            if self.peer_bytes is not None and peer_total > self.peer_bytes:
                limit = f"the limit of {self.peer_bytes} bytes per peer"
            elif self.job_bytes is not None and job_total > self.job_bytes:
                limit = f"the limit of {self.job_bytes} bytes per job"
            else:
                self._pending[sender] = peer_total
                return
            self._overflow = (f"peer '{sender}' pushed more than {self.owner}'s mailbox holds: message "
                              f"{key!r} of {nbytes} bytes would leave {peer_total} bytes of '{sender}' "
                              f"({job_total} in all) unread, over {limit}")
            self._queues.clear()
            self._pending.clear()
            self._cond.notify_all()
            raise MailboxFullError(self._overflow)

    def release(self, sender: str, nbytes: int) -> None:
        """Give back an admitted message that never arrived (stream broken, duplicate)."""
        with self._cond:
            if sender in self._pending:
                self._pending[sender] = max(0, self._pending[sender] - nbytes)

    def pending_bytes(self) -> int:
        """Bytes admitted (arriving or delivered) and not yet read, of every sender."""
        with self._cond:
            return sum(self._pending.values())

    def check(self) -> None:
        """Raise MailboxFullError once a peer has overflowed this mailbox."""
        if self._overflow is not None:
            raise MailboxFullError(self._overflow)

    def put(self, sender: str, key: str, payload: bytes, message_id: str | None = None,
            admitted: bool = False) -> bool:
        """Deliver a message; returns False when `message_id` was already delivered.

        `admitted`: its size was counted by `admit` already.
        """
        with self._cond:
            if not admitted:
                self.admit(sender, key, len(payload))
            if message_id is not None:
                if message_id in self._seen_ids:
                    self.release(sender, len(payload))
                    return False
                self._seen_ids.add(message_id)
            self._queues.setdefault((sender, key), deque()).append(payload)
            self._cond.notify_all()
            return True

    def get(self, sender: str, key: str, timeout: float) -> bytes:
        """Wait for the next message from `sender` under `key`.

        Raises TimeoutError after `timeout` seconds, PeerError if the sender was marked failed,
        MailboxFullError if a peer overflowed the mailbox.
        """
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._queues.get((sender, key)) or sender in self._failed or self._overflow,
                timeout,
            )
            self.check()
            queue = self._queues.get((sender, key))
            if queue:
                payload = queue.popleft()
                if not queue:
                    del self._queues[(sender, key)]
                self.release(sender, len(payload))
                return payload
            if sender in self._failed:
                raise PeerError(f"peer '{sender}' failed: {self._failed[sender]}")
            assert not ok
            raise TimeoutError(key)

    def fail_peer(self, sender: str, reason: str) -> None:
        """Mark `sender` as gone: its pending and future waits raise PeerError."""
        with self._cond:
            self._failed[sender] = reason
            self._cond.notify_all()

    def failure(self, sender: str) -> str | None:
        """Why `sender` was marked failed (None: it was not)."""
        with self._cond:
            return self._failed.get(sender)

    def forget(self, key_prefix: str) -> None:
        """Drop undelivered messages of a finished job (keys start with its prefix)."""
        with self._cond:
            for k in [k for k in self._queues if k[1].startswith(key_prefix)]:
                self.release(k[0], sum(len(p) for p in self._queues.pop(k)))

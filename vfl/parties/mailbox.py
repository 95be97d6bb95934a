"""A party's inbox: tagged messages from peers, waited for by key, delivered at most once.

Both the in-process channel and the gRPC service deliver into a Mailbox, so the waiting,
timeout, duplicate and failure semantics are the same in simulation and across the internet.
"""

from __future__ import annotations

import threading
from collections import deque

from vfl.errors import PeerError


class Mailbox:
    """Messages for one party, FIFO per (sender, key).

    A message id seen before is dropped (a retried send is never applied twice). A sender
    marked failed wakes everyone waiting for it with a PeerError instead of a long timeout.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._queues: dict[tuple[str, str], deque[bytes]] = {}
        self._seen_ids: set[str] = set()
        self._failed: dict[str, str] = {}
        self._cond = threading.Condition()

    def put(self, sender: str, key: str, payload: bytes, message_id: str | None = None) -> bool:
        """Deliver a message; returns False when `message_id` was already delivered."""
        with self._cond:
            if message_id is not None:
                if message_id in self._seen_ids:
                    return False
                self._seen_ids.add(message_id)
            self._queues.setdefault((sender, key), deque()).append(payload)
            self._cond.notify_all()
            return True

    def get(self, sender: str, key: str, timeout: float) -> bytes:
        """Wait for the next message from `sender` under `key`.

        Raises TimeoutError after `timeout` seconds, PeerError if the sender was marked failed.
        """
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._queues.get((sender, key)) or sender in self._failed, timeout
            )
            queue = self._queues.get((sender, key))
            if queue:
                payload = queue.popleft()
                if not queue:
                    del self._queues[(sender, key)]
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

    def forget(self, key_prefix: str) -> None:
        """Drop undelivered messages of a finished job (keys start with its prefix)."""
        with self._cond:
            for k in [k for k in self._queues if k[1].startswith(key_prefix)]:
                del self._queues[k]

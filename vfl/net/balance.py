"""Client-side balancing and failover over the replicas of one party: the one place that
decides which replica a call goes to.

A `Balancer` holds one channel (`open_channel`: mutual TLS, the server must be that party) per
replica address, spreads calls over the live ones round robin, and retries an idempotent call
that failed because its replica is gone (``UNAVAILABLE``: connection refused or reset, the
process died) on another replica, within the call's deadline. A replica that failed is skipped
for `cooldown` seconds (unless no other is left). The addresses come from a resolver (a
party's static `peers:` addresses, or the live replicas of a registry), asked on every call.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import grpc

from vfl.crypto.tls import TlsFiles
from vfl.net.channel import open_channel

log = logging.getLogger("vfl.net")

S = TypeVar("S")
T = TypeVar("T")

GONE = (grpc.StatusCode.UNAVAILABLE,)  # the replica is down or its connection broke
FORGET = 60.0  # seconds after a replica left the resolver's list before its channel is closed


class NoReplicaError(Exception):
    """The resolver knows no address for the party."""


class ReplicaCallError(Exception):
    """A call failed on replica `address` (the last one tried) with gRPC error `rpc`."""

    def __init__(self, rpc: grpc.RpcError, address: str, tried: int) -> None:
        super().__init__(f"{address}: {rpc}")
        self.rpc, self.address, self.tried = rpc, address, tried


class Balancer(Generic[S]):
    """Calls to one party over all of its replicas.

    Parameters
    ----------
    party
        The party every replica must be (its certificate's name).
    resolve
        Returns the replicas' ``host:port`` addresses; called on every call, so it must be cheap.
    stub
        Builds the gRPC stub used on a replica's channel (e.g. ``InferenceStub``).
    tls
        This party's TLS files (None: plaintext, local experiments only).
    max_message
        The largest message either way, in bytes.
    cooldown
        Seconds a replica that failed is skipped while another is left.
    """

    def __init__(self, party: str, resolve: Callable[[], Sequence[str]], stub: Callable[[grpc.Channel], S],
                 tls: TlsFiles | None, max_message: int, cooldown: float = 1.0) -> None:
        self.party, self.resolve, self.cooldown = party, resolve, cooldown
        self._make_stub, self._tls, self._max_message = stub, tls, max_message
        self._lock = threading.Lock()
        self._channels: dict[str, tuple[grpc.Channel, S]] = {}
        self._failed_at: dict[str, float] = {}
        self._vanished_at: dict[str, float] = {}
        self._turn = itertools.count()

    def call(self, invoke: Callable[[S, float], T], timeout: float, idempotent: bool = True) -> T:
        """``invoke(stub, seconds_left)`` on one replica; on another (each one once) while the
        replica tried is gone, the call is idempotent and `timeout` seconds are not over.

        Raises
        ------
        NoReplicaError
            No address is known for the party.
        ReplicaCallError
            The last replica tried failed (its gRPC error and address).
        """
        deadline = time.monotonic() + timeout
        tried: list[str] = []
        while True:
            address, stub = self._pick(tried)
            tried.append(address)
            left = deadline - time.monotonic()
            try:
                return invoke(stub, max(left, 0.001))
            except grpc.RpcError as exc:
                if exc.code() not in GONE:
                    raise ReplicaCallError(exc, address, len(tried)) from None
                self._failed(address)
                untried = set(self.resolve()) - set(tried)  # each replica once per call
                if not idempotent or not untried or deadline - time.monotonic() <= 0:
                    raise ReplicaCallError(exc, address, len(tried)) from None
                log.info("%s replica %s is gone (%s); retrying on another", self.party, address,
                         exc.details())

    def _pick(self, tried: list[str]) -> tuple[str, S]:
        addresses = list(self.resolve())
        if not addresses:
            raise NoReplicaError(f"no replica of '{self.party}' is known")
        now = time.monotonic()
        with self._lock:
            live = [a for a in addresses if now - self._failed_at.get(a, -1e9) >= self.cooldown]
            fresh = [a for a in live if a not in tried] or [a for a in addresses if a not in tried]
            choices = fresh or live or addresses
            address = choices[next(self._turn) % len(choices)]
            if address not in self._channels:
                channel = open_channel(address, self.party, self._tls, self._max_message)
                self._channels[address] = (channel, self._make_stub(channel))
            self._forget(set(addresses), now)
            return address, self._channels[address][1]

    def _forget(self, known: set[str], now: float) -> None:
        """Close the channels of replicas gone from the resolver for `FORGET` seconds (not at
        once: a call may still be finishing on one)."""
        for address in set(self._channels) - known:
            since = self._vanished_at.setdefault(address, now)
            if now - since > FORGET:
                self._channels.pop(address)[0].close()
                del self._vanished_at[address]
        for address in known & set(self._vanished_at):
            del self._vanished_at[address]

    def _failed(self, address: str) -> None:
        with self._lock:
            self._failed_at[address] = time.monotonic()

    def close(self) -> None:
        with self._lock:
            for channel, _stub in self._channels.values():
                channel.close()
            self._channels.clear()


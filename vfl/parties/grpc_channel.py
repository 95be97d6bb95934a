"""The client side of the party service: peer connections and the gRPC Channel (the guest-side
Federation API is `vfl.parties.federation`).

Every party of a job runs a PartyService (``vfl serve``, or embedded in a Python session).
Messages are *pushed*: ``send`` streams a message in 4 MB chunks to the receiver's service,
which authenticates the sender from its TLS certificate and puts the message into its own
mailbox; ``recv`` reads from this party's own service mailbox. So protocol code sees the
same ``Context`` as in simulation.

Failures: an unreachable peer is retried with exponential backoff for ``timeouts.connect``
seconds, then PeerError names the peer and what was being done (the message key names the
job, step and tag). While ``recv`` waits it probes the sender's service every few seconds:
a sender whose job failed or whose service is gone raises PeerError naming it well before the
message timeout. A policy refusal becomes PolicyError with the host's own message.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from vfl import errors
from vfl.errors import JobCancelledError, PeerError, ProtocolError, VflError
from vfl.net import codec
from vfl.net.channel import open_channel
from vfl.net.status import PeerUnreachableError, refusal
from vfl.parties.config import PartyConfig
from vfl.parties.mailbox import Mailbox
from vfl.parties.proto import vfl_pb2 as pb
from vfl.parties.proto import vfl_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    import threading


log = logging.getLogger("vfl.grpc")

CHUNK_BYTES = 4 << 20
GRPC_MAX_MESSAGE = CHUNK_BYTES + (1 << 20)  # one chunk plus headers; whole messages are chunked
FINAL_STATES = ("succeeded", "failed", "cancelled")
T = TypeVar("T")


@dataclass(frozen=True)
class JobInfo:
    """A job as one party's service reports it."""

    party: str
    job_id: str
    protocol: str
    role: str
    peer: str
    state: str
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    error: str | None
    progress: str
    result: Any

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def raise_for_state(self) -> JobInfo:
        """Raise the error the job failed with (same class where it is a vfl error)."""
        if self.state == "succeeded":
            return self
        if self.state == "cancelled":
            raise JobCancelledError(f"job '{self.job_id}' was cancelled on '{self.party}'")
        if self.state == "failed":
            kind, _, message = (self.error or "").partition(": ")
            cls = getattr(errors, kind, None)
            if not (isinstance(cls, type) and issubclass(cls, VflError)):
                cls, message = PeerError, self.error or "unknown error"
            raise cls(f"job '{self.job_id}' failed on '{self.party}': {message}")
        raise PeerError(f"job '{self.job_id}' on '{self.party}' is still {self.state}")


def job_info(party: str, status: pb.JobStatus) -> JobInfo:
    return JobInfo(
        party=party, job_id=status.job_id, protocol=status.protocol, role=status.role,
        peer=status.peer, state=status.state, created_at=status.created_at or None,
        started_at=status.started_at or None, finished_at=status.finished_at or None,
        error=status.error or None, progress=status.progress,
        result=codec.decode(status.result) if status.result else None,
    )


class PeerClient:
    """This party's connection to one peer's service (thread-safe; one per peer and service)."""

    def __init__(self, config: PartyConfig, peer: str, address: str) -> None:
        self.owner = config.name
        self.peer = peer
        self.address = address
        self.connect_timeout = config.timeouts.connect
        self.message_timeout = config.timeouts.message
        self.control_timeout = max(10.0, config.timeouts.connect)
        self._channel = open_channel(address, peer, config.tls_files(), GRPC_MAX_MESSAGE)
        self._stub = pb_grpc.PartyStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    # --- messages -----------------------------------------------------------------------
    def send(self, job_id: str, key: str, payload: bytes, message_id: str | None = None) -> bool:
        """Deliver one message; True if new, False if the peer had it already (a retry)."""
        message_id = message_id or uuid.uuid4().hex
        total = max(1, -(-len(payload) // CHUNK_BYTES))
        view = memoryview(payload)

        def chunks() -> Iterator[pb.Chunk]:
            for i in range(total):
                yield pb.Chunk(
                    job_id=job_id, sender=self.owner, key=key, message_id=message_id, index=i,
                    total=total, total_bytes=len(payload),
                    data=bytes(view[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES]),
                )

        reply = self._retrying(
            f"sending '{key}'", lambda: self._stub.Send(chunks(), timeout=self.message_timeout)
        )
        return not reply.duplicate

    # --- job control --------------------------------------------------------------------
    def start_job(
        self, job_id: str, protocol: str, params: Any, roles: Mapping[str, str],
        datasets: Mapping[str, list[str]],
    ) -> JobInfo:
        request = pb.StartJobRequest(
            job_id=job_id, sender=self.owner, protocol=protocol, params=codec.encode(params),
            roles=dict(roles), datasets={p: pb.Names(names=list(n)) for p, n in datasets.items()},
        )
        status = self._retrying(
            f"starting job '{job_id}' ({protocol})",
            lambda: self._stub.StartJob(request, timeout=self.control_timeout),
        )
        return job_info(self.peer, status)

    def get_job(self, job_id: str, timeout: float | None = None, retry: bool = True) -> JobInfo:
        request = pb.JobRef(job_id=job_id, sender=self.owner)
        call = lambda: self._stub.GetJob(request, timeout=timeout or self.control_timeout)  # noqa: E731
        status = self._retrying(f"asking for job '{job_id}'", call) if retry else self._once(
            f"asking for job '{job_id}'", call
        )
        return job_info(self.peer, status)

    def cancel_job(self, job_id: str) -> JobInfo:
        request = pb.JobRef(job_id=job_id, sender=self.owner)
        status = self._retrying(
            f"cancelling job '{job_id}'", lambda: self._stub.CancelJob(request, timeout=self.control_timeout)
        )
        return job_info(self.peer, status)

    def report_failure(self, job_id: str, reason: str) -> None:
        """Best effort, one attempt: tell the peer our role failed so it stops waiting for us."""
        request = pb.FailureReport(job_id=job_id, sender=self.owner, reason=reason[:2000])
        try:
            self._stub.ReportFailure(request, timeout=3.0)
        except grpc.RpcError as exc:
            log.info("could not tell '%s' that job '%s' failed: %s", self.peer, job_id, exc.code())

    def health(self) -> dict[str, Any]:
        reply = self._retrying(
            "checking health",
            lambda: self._stub.Health(pb.HealthRequest(sender=self.owner), timeout=self.control_timeout),
        )
        return {"party": reply.party, "version": reply.version, "running_jobs": reply.running_jobs,
                "insecure": reply.insecure, "compute": _compute(reply.compute, self.peer)}

    # --- errors and retries ---------------------------------------------------------------
    def _once(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except grpc.RpcError as exc:
            raise self._error(exc, what) from None

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Retry while the peer is unavailable, backing off exponentially, for `connect` s."""
        first_failure: float | None = None
        delay = 0.05
        while True:
            try:
                return call()
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise self._error(exc, what) from None
                now = time.monotonic()
                first_failure = first_failure or now
                remaining = self.connect_timeout - (now - first_failure)
                if remaining <= 0:
                    raise self._error(exc, what) from None
                log.debug("peer '%s' unavailable while %s; retrying in %.2fs", self.peer, what, delay)
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 1.0)

    def _error(self, exc: grpc.RpcError, what: str) -> VflError:
        code: grpc.StatusCode = exc.code()
        where = f"peer '{self.peer}' ({self.address})"
        refused = refusal(exc, where, what)
        if refused is not None:
            return refused
        detail: str = exc.details() or ""
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return PeerUnreachableError(
                f"{where} unreachable while {what} (gave up after {self.connect_timeout:g}s): "
                f"[{code.name}] {detail}"
            )
        return PeerError(f"{where} failed {what}: [{code.name}] {detail}")


class GrpcChannel:
    """The Channel of one job on one party: sends go to peers' services, receives come from
    this party's own service mailbox for the job."""

    def __init__(
        self, owner: str, job_id: str, mailbox: Mailbox, peers: Mapping[str, PeerClient],
        cancelled: threading.Event, connect_timeout: float,
    ) -> None:
        self.owner = owner
        self.job_id = job_id
        self.mailbox = mailbox
        self.peers = peers
        self.cancelled = cancelled
        self.connect_timeout = connect_timeout
        self.probe_interval = min(2.0, max(0.2, connect_timeout / 4))
        self.probe_timeout = max(2.0, connect_timeout / 2)  # a busy peer is slow, not gone

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelledError(f"job '{self.job_id}' was cancelled")

    def _peer(self, name: str) -> PeerClient:
        if name not in self.peers:
            raise ProtocolError(f"'{name}' is not a configured peer of '{self.owner}'")
        return self.peers[name]

    def send(self, sender: str, receiver: str, key: str, payload: bytes) -> None:
        if sender != self.owner:
            raise ProtocolError(f"'{self.owner}' cannot send as '{sender}'")
        self._check_cancelled()
        self.mailbox.check()
        reason = self.mailbox.failure(receiver)
        if reason is not None:  # it told us why it stopped: say that, not what sending got back
            raise PeerError(f"peer '{receiver}' failed: {reason}")
        self._peer(receiver).send(self.job_id, key, payload)

    def recv(self, receiver: str, sender: str, key: str, timeout: float) -> bytes:
        """Wait for a message; meanwhile probe the sender so a dead peer fails fast."""
        peer = self._peer(sender)
        deadline = time.monotonic() + timeout
        unreachable_since: float | None = None
        while True:
            self._check_cancelled()
            wait = min(self.probe_interval, max(0.0, deadline - time.monotonic()))
            try:
                return self.mailbox.get(sender, key, wait)
            except TimeoutError:
                pass
            except PeerError:
                self._check_cancelled()
                raise
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(key)
            try:
                info = peer.get_job(self.job_id, timeout=self.probe_timeout, retry=False)
            except PeerUnreachableError as exc:
                unreachable_since = unreachable_since or now
                if now - unreachable_since >= self.connect_timeout:
                    raise PeerError(
                        f"peer '{sender}' has been unreachable for {now - unreachable_since:.0f}s: {exc}"
                    ) from None
                continue
            except VflError as exc:
                raise PeerError(f"peer '{sender}' cannot report on the job: {exc}") from None
            unreachable_since = None
            if info.state in ("failed", "cancelled"):
                raise PeerError(f"peer '{sender}' {info.state} its role: {info.error or 'no reason given'}")
            if info.state == "succeeded":
                try:  # its sends completed before it finished, so the message is here or never
                    return self.mailbox.get(sender, key, 0.0)
                except TimeoutError:
                    raise PeerError(f"peer '{sender}' finished its role without sending this message") from None


def _compute(text: str, peer: str) -> dict[str, Any]:
    """The engine a peer's health reply describes (a JSON object; empty from older versions)."""
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        raise ProtocolError(f"health reply of '{peer}': field compute is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"health reply of '{peer}': field compute is not a JSON object")
    return value

"""The party service: one gRPC server per organization (``vfl serve`` or embedded in Python).

It holds this party's mailboxes (one per job), runs the roles that peers (or this party's own
operator) ask for once its policy allows them, and records every job in its store.

Security: with TLS (the default) a caller's identity is the common name of its verified
client certificate (see vfl.crypto.tls); it must be a configured peer or this party itself,
and every request's claimed ``sender`` must equal it. Plaintext transport needs
``insecure: true`` in the config and the explicit ``--insecure`` flag of ``vfl serve``; then
the claimed sender is trusted, which anyone on the network can forge.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import grpc

from vfl import __version__ as vfl_version
from vfl.errors import (
    CodecError,
    ConfigError,
    JobCancelledError,
    MailboxFullError,
    PolicyError,
    ProtocolError,
    VflError,
)
from vfl.names import check_name
from vfl.net import codec
from vfl.net.channel import message_limits, server_credentials
from vfl.net.identity import IdentityRefused, caller_identity
from vfl.net.status import ENDED, ERROR_KIND
from vfl.parties import policy, registry
from vfl.parties.config import PartyConfig
from vfl.parties.context import GUEST, Context, ProgressEvent
from vfl.parties.discovery import registry_for
from vfl.parties.grpc_channel import GRPC_MAX_MESSAGE, GrpcChannel, PeerClient
from vfl.parties.mailbox import Mailbox
from vfl.parties.metrics import Readiness, ServiceMetrics
from vfl.parties.progress import ProgressStatus
from vfl.parties.proto import vfl_pb2 as pb
from vfl.parties.proto import vfl_pb2_grpc as pb_grpc
from vfl.parties.runtime import PartyRuntime
from vfl.store.jobs import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobRecord,
    JobStore,
)

log = logging.getLogger("vfl.service")

MAX_PARAMS_BYTES = 64 << 20
KEPT_RESULTS = 64


@dataclass
class ActiveJob:
    """A job this service is running (or about to): its mailbox and cancel flag live here."""

    job_id: str
    protocol: str
    role: str
    requester: str
    roles: dict[str, str]
    datasets: dict[str, list[str]]
    mailbox: Mailbox
    cancelled: threading.Event = field(default_factory=threading.Event)
    progress: str = ""
    state: str = QUEUED


class JobRuntime(PartyRuntime):
    """What a job's role may touch: the party's runtime, but only the approved datasets."""

    def __init__(self, base: PartyRuntime, datasets: list[str]) -> None:
        super().__init__(base.config, base.executor, base.compute)
        self.allowed = frozenset(datasets)

    def dataset(self, name: str) -> Any:
        if name not in self.allowed:
            raise PolicyError(
                f"this job was approved for datasets {sorted(self.allowed)} of '{self.name}', "
                f"not '{name}'"
            )
        return super().dataset(name)


class Closeable(Protocol):
    def close(self) -> None: ...


ServicePart = Callable[["PartyService", grpc.Server], Closeable]
"""Adds more RPCs to the service's gRPC server when it starts; closed when it stops
(serving's inference, scoring and model RPCs are one: see ``vfl.serving.grpc_api``)."""


class PartyService:
    """Start with ``.start()`` (returns self), stop with ``.stop()``; or use as a context manager.

    Parameters
    ----------
    config
        This party's config.
    runtime
        Its data and workers (default: made from `config`).
    parts
        More RPC handlers to serve beside the job RPCs (``vfl serve`` adds serving's).
    """

    def __init__(self, config: PartyConfig, runtime: PartyRuntime | None = None,
                 parts: Sequence[ServicePart] = ()) -> None:
        self.config = config
        self.name = config.name
        self.runtime = runtime or PartyRuntime(config)
        self.insecure = config.tls is None
        if self.insecure and not config.insecure:
            raise ConfigError(f"party '{self.name}': set `tls` (ca, cert, key) or `insecure: true`")
        self.jobs = JobStore.for_store(config.store.path, config.store.url,
                                       replica=config.registry.advertise or config.listen)
        self.port: int | None = None
        self._server: grpc.Server | None = None
        self._active: dict[str, ActiveJob] = {}
        self._results: dict[str, bytes] = {}
        self._peers: dict[str, PeerClient] = {}
        self._lock = threading.RLock()
        self.parts = list(parts)
        self._attached: list[Closeable] = []
        self.metrics = ServiceMetrics(self.name)
        self.metrics.watch(self._gauges)
        self.readiness = Readiness()  # parts add theirs (serving: its models loaded)
        self.readiness.add("service", lambda: None if self._server is not None else "not serving yet")

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> PartyService:
        registry.load_plugins([*registry.BUILTIN, *self.config.plugins])
        compute = self.runtime.compute  # a Dask cluster is reached now, before any job
        compute.start()  # once per service: every job reuses its workers
        log.info("party '%s' computes on %s", self.name, _describe(compute.describe()))
        interrupted = self.jobs.mark_interrupted()
        if interrupted:
            log.warning("%s: marked %d job(s) failed (%s): %s", self.name, len(interrupted),
                        INTERRUPTED, ", ".join(interrupted))
        server = grpc.server(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"vfl-{self.name}-rpc"),
            options=message_limits(GRPC_MAX_MESSAGE),
        )
        pb_grpc.add_PartyServicer_to_server(_Servicer(self), server)
        self._attached = [attach(self, server) for attach in self.parts]
        tls = self.config.tls_files()
        try:
            if tls is None:
                _warn_insecure(self.name)
                port = server.add_insecure_port(self.config.listen)
            else:
                port = server.add_secure_port(self.config.listen, server_credentials(tls, self.name))
        except RuntimeError as exc:
            raise ConfigError(f"party '{self.name}': cannot listen on {self.config.listen}: {exc}") from exc
        if port == 0:
            raise ConfigError(f"party '{self.name}': cannot listen on {self.config.listen}")
        server.start()
        self._server, self.port = server, port
        log.info("party '%s' serving on %s (%s)", self.name, self.config.listen,
                 "PLAINTEXT" if self.insecure else "mutual TLS")
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stop serving; jobs still running are cancelled and recorded as failed."""
        with self._lock:
            active = list(self._active.values())
        for job in active:
            self._finish(job, FAILED, "the party service was stopped")
            job.cancelled.set()
            for peer in job.roles:
                job.mailbox.fail_peer(peer, "the party service was stopped")
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        for part in self._attached:
            part.close()
        self._attached.clear()
        for client in self._peers.values():
            client.close()
        self._peers.clear()
        self.jobs.close()
        self.runtime.close()

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self) -> PartyService:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- peers --------------------------------------------------------------------------
    def peer(self, name: str) -> PeerClient:
        with self._lock:
            if name not in self._peers:
                if name not in self.config.peers:
                    raise ProtocolError(f"'{name}' is not a configured peer of '{self.name}'")
                self._peers[name] = PeerClient(self.config, name, registry_for(self.config).primary(name))
            return self._peers[name]

    # --- jobs ---------------------------------------------------------------------------
    def running_jobs(self) -> int:
        with self._lock:
            return len(self._active)

    def active_job(self, job_id: str) -> ActiveJob | None:
        with self._lock:
            return self._active.get(job_id)

    def open_job(
        self, requester: str, job_id: str, protocol: str, params: Any, roles: Mapping[str, str],
        datasets: Mapping[str, list[str]],
    ) -> ActiveJob:
        """Check policy and register the job (queued); raises PolicyError / ProtocolError."""
        roles, datasets = dict(roles), {p: list(d) for p, d in datasets.items()}
        _check_roles(self.name, job_id, roles, datasets)
        missing = [p for p in roles if p != self.name and p not in self.config.peers]
        if missing:
            raise PolicyError(f"'{self.name}' has no configured peer(s) {missing} of this job")
        with self._lock:
            policy.check_start(self.config, requester, protocol, roles, datasets, params,
                               running_jobs=len(self._active))
            registry.get(protocol)
            record = self.jobs.get(job_id)
            resumable = record is not None and _may_resume(record, protocol, requester, roles)
            if job_id in self._active or (record is not None and not resumable):
                raise ProtocolError(f"job id '{job_id}' is already known to '{self.name}'"
                                    + (f" ({record.state})" if record is not None else ""))
            mailbox = Mailbox(self.name, self.config.mailbox.peer_bytes, self.config.mailbox.job_bytes)
            job = ActiveJob(job_id, protocol, roles[self.name], requester, roles, datasets, mailbox)
            if resumable:
                self.jobs.restart(job_id)
            else:
                self.jobs.create(job_id, protocol, job.role, requester, roles)
            self._active[job_id] = job
        log.info("%s: job '%s' (%s, role %s) %s from '%s'", self.name, job_id, protocol,
                 job.role, "accepted again (resuming)" if resumable else "accepted", requester)
        return job

    def context(self, job: ActiveJob, on_progress: Callable[[ProgressEvent], None] | None = None) -> Context:
        peers = {p: self.peer(p) for p in job.roles if p != self.name}
        channel = GrpcChannel(self.name, job.job_id, job.mailbox, peers, job.cancelled,
                              self.config.timeouts.connect)

        status = ProgressStatus()
        compute = self.runtime.compute
        before = compute.tasks() or (0, 0)

        def progress(event: ProgressEvent) -> None:
            job.progress = status.update(event)
            self.metrics.progress(event)
            tasks = compute.tasks()
            if tasks is not None:  # the cluster's tasks since this job began, as one more step
                job.progress = status.update(ProgressEvent(
                    event.party, event.job_id, "cluster", tasks[0] - before[0],
                    tasks[1] - before[1], {"unit": "tasks"}))
            if on_progress is not None:
                on_progress(event)

        return Context(
            name=self.name, job_id=job.job_id, roles=job.roles, channel=channel,
            timeout=self.config.timeouts.message, executor=self.runtime.executor,
            on_progress=progress, max_message_bytes=self.config.max_message_bytes,
        )

    @contextmanager
    def lifecycle(
        self, job: ActiveJob, params: Any, on_progress: Callable[[ProgressEvent], None] | None = None
    ) -> Iterator[Context]:
        """Run a job's role: running -> succeeded / failed / cancelled, peers told of failure.

        The guest's side first starts the role on every host (a host's refusal fails the job).
        """
        self._set_state(job, RUNNING)
        try:
            if job.role == GUEST:
                self._start_hosts(job, params)
            yield self.context(job, on_progress)
        except BaseException as exc:
            if job.cancelled.is_set() or isinstance(exc, JobCancelledError):
                self._finish(job, CANCELLED, f"{type(exc).__name__}: {exc}")  # whatever followed
                raise
            reason = f"{type(exc).__name__}: {exc}"
            self._finish(job, FAILED, reason)
            for peer in job.roles:
                if peer != self.name:
                    self.peer(peer).report_failure(job.job_id, for_peers(self.name, reason))
            raise
        else:
            self._finish(job, SUCCEEDED, None)

    @contextmanager
    def guest_session(
        self, job_id: str, protocol: str, params: Any, roles: Mapping[str, str],
        datasets: Mapping[str, list[str]], on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> Iterator[Context]:
        """This party is the guest and runs its role in the caller's thread (Federation.job)."""
        if roles.get(self.name) != GUEST:
            raise ProtocolError(f"'{self.name}' is not the guest of job '{job_id}' (roles {dict(roles)})")
        job = self.open_job(self.name, job_id, protocol, params, roles, datasets)
        with self.lifecycle(job, params, on_progress) as ctx:
            yield ctx

    def _start_hosts(self, job: ActiveJob, params: Any) -> None:
        started: list[str] = []
        try:
            for host in [p for p, r in job.roles.items() if r != GUEST]:
                self.peer(host).start_job(job.job_id, job.protocol, registry.for_hosts(params), job.roles,
                                          job.datasets)
                started.append(host)
        except VflError:
            for host in started:
                try:
                    self.peer(host).cancel_job(job.job_id)
                except VflError as exc:
                    log.info("%s: could not cancel job '%s' on '%s': %s", self.name, job.job_id, host, exc)
            raise

    def run_in_thread(self, job: ActiveJob, params: Any) -> None:
        entry = registry.get(job.protocol)
        party = JobRuntime(self.runtime, job.datasets.get(self.name, []))

        def run() -> None:
            try:
                with self.lifecycle(job, params) as ctx:
                    result = entry(ctx, party, params)
                    encoded = codec.encode(result, self.config.max_message_bytes)
                with self._lock:
                    self._results[job.job_id] = encoded
                    while len(self._results) > KEPT_RESULTS:
                        self._results.pop(next(iter(self._results)))
            except BaseException as exc:  # noqa: BLE001 - recorded in the job store
                log.warning("%s: job '%s' ended: %s: %s", self.name, job.job_id, type(exc).__name__, exc)

        threading.Thread(target=run, name=f"vfl-job-{job.job_id}", daemon=True).start()

    def cancel(self, job_id: str, requester: str) -> None:
        job = self.active_job(job_id)
        if job is None:
            return
        log.info("%s: job '%s' cancelled by '%s'", self.name, job_id, requester)
        job.cancelled.set()
        if job.role == GUEST:  # hosts first: their roles must not see the guest vanish first
            for host in [p for p in job.roles if p != self.name]:
                try:
                    self.peer(host).cancel_job(job_id)
                except VflError as exc:
                    log.info("%s: could not cancel job '%s' on '%s': %s", self.name, job_id, host, exc)
        for peer in job.roles:
            job.mailbox.fail_peer(peer, "job cancelled")

    def _set_state(self, job: ActiveJob, state: str) -> None:
        self.jobs.set_state(job.job_id, state)
        job.state = state

    def _finish(self, job: ActiveJob, state: str, error: str | None) -> None:
        with self._lock:
            if self._active.get(job.job_id) is not job:
                return  # already finished (e.g. by stop())
            del self._active[job.job_id]
            self.jobs.set_state(job.job_id, state, error)
        self.metrics.job_ended(job.job_id, state)
        log.info("%s: job '%s' %s%s", self.name, job.job_id, state, f": {error}" if error else "")

    def _gauges(self) -> Iterator[Any]:
        """What Prometheus reads at each scrape: who this service is, jobs now queued or
        running, their mailboxes' pending bytes, and whether this service is ready."""
        with self._lock:
            active = list(self._active.values())
        yield self.metrics.gauge("vfl_service_info", "This service: its party and vfl version", ["party", "vfl_version"],
                                 [([self.name, vfl_version], 1.0)])
        yield self.metrics.gauge("vfl_jobs", "Jobs of this service now queued or running", ["state"],
                                 [([s], sum(j.state == s for j in active)) for s in (QUEUED, RUNNING)])
        yield self.metrics.gauge("vfl_mailbox_bytes_pending", "Bytes peers sent this service's jobs, not yet read",
                                 [], [([], sum(j.mailbox.pending_bytes() for j in active))])
        yield self.metrics.gauge("vfl_ready", "1 when every readiness condition is met", [],
                                 [([], 0.0 if self.readiness.unmet() else 1.0)])

    def status(self, job_id: str, caller: str | None = None) -> pb.JobStatus:
        """A job's record as `caller` may see it (None: this party itself).

        The result goes only to this party and to whoever submitted the job; another party
        of the job sees the state, and errors without the data they may quote.
        """
        record = self.jobs.get(job_id)
        if record is None:
            raise KeyError(job_id)
        job = self.active_job(job_id)
        mine = caller in (None, self.name)
        with self._lock:
            result = self._results.get(job_id, b"") if mine or caller == record.peer else b""
        error = record.error or ""
        return pb.JobStatus(
            job_id=record.job_id, protocol=record.protocol, role=record.role, peer=record.peer,
            state=record.state, created_at=record.created_at, started_at=record.started_at or 0.0,
            finished_at=record.finished_at or 0.0, error=error if mine else for_peers(self.name, error),
            progress=job.progress if job else "", result=result,
        )


SHARED_ERRORS = ("PolicyError", "PeerError", "PeerTimeoutError", "PeerUnreachableError",
                 "ProtocolError", "ConfigError", "JobCancelledError", "CodecError", "MailboxFullError",
                 "UnsafeNameError")
"""Errors whose messages are written for peers (rules, steps, fields); others, DataError
above all, may quote this party's raw values and stay in its own logs and job store."""


def for_peers(me: str, reason: str) -> str:
    """`reason` ("Kind: message") as a peer may read it."""
    kind, _, _ = reason.partition(": ")
    if not reason or kind in SHARED_ERRORS:
        return reason
    return f"{kind}: the role of '{me}' failed on its own data (details in its own logs)"


def _may_resume(record: JobRecord, protocol: str, requester: str,
                roles: Mapping[str, str]) -> bool:
    """A failed or cancelled job may run again under its id, same protocol, submitter and
    parties: its roles then resume from their checkpoints."""
    return (record.state in (FAILED, CANCELLED) and record.protocol == protocol
            and record.peer == requester and record.parties == dict(roles))


def _check_roles(me: str, job_id: str, roles: dict[str, str], datasets: dict[str, list[str]]) -> None:
    check_name(job_id, "job_id")
    for party, names in datasets.items():
        for name in names:
            check_name(name, f"datasets.{party}")
    if me not in roles:
        raise ProtocolError(f"'{me}' is not a party of job '{job_id}' (parties {sorted(roles)})")
    if sorted(set(roles.values()) | {"guest", "host"}) != ["guest", "host"] or list(roles.values()).count(GUEST) != 1:
        raise ProtocolError(f"job '{job_id}' needs one guest and hosts, got roles {roles}")


def _warn_insecure(name: str) -> None:
    message = (
        f"party '{name}' uses PLAINTEXT transport: no encryption, no authentication; anyone on "
        "the network can read messages and impersonate peers. Local experiments only."
    )
    warnings.warn(message, stacklevel=3)
    log.warning("!" * 20 + " " + message + " " + "!" * 20)


class _Servicer(pb_grpc.PartyServicer):
    """The RPC handlers: authenticate, validate, then hand over to the PartyService."""

    def __init__(self, service: PartyService) -> None:
        self.service = service
        self.name = service.name

    # --- authentication -----------------------------------------------------------------
    def _abort(self, context: grpc.ServicerContext, code: grpc.StatusCode, message: str,
               kind: str = "") -> NoReturn:
        if kind:
            context.set_trailing_metadata(((ERROR_KIND, kind),))
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            log.warning("%s: refused %s: %s", self.name, context.peer(), message)
        context.abort(code, message)
        raise AssertionError("unreachable")  # context.abort always raises

    def _sender(self, context: grpc.ServicerContext, claimed: str) -> str:
        """The caller's authenticated name; refuses unknown identities and forged senders."""
        if self.service.insecure:
            if not self._known(claimed):
                self._abort(context, grpc.StatusCode.PERMISSION_DENIED,
                            f"'{claimed}' is not a configured peer of '{self.name}'")
            return claimed
        try:
            return caller_identity(context, claimed, known=self._known, owner=self.name)
        except IdentityRefused as exc:
            self._abort(context, exc.code, str(exc))

    def _known(self, name: str) -> bool:
        return name == self.name or name in self.service.config.peers

    def _valid_job_id(self, context: grpc.ServicerContext, job_id: str) -> None:
        try:
            check_name(job_id, "job_id")
        except ProtocolError as exc:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), "protocol")

    def _job(self, context: grpc.ServicerContext, job_id: str, sender: str) -> ActiveJob:
        self._valid_job_id(context, job_id)
        job = self.service.active_job(job_id)
        if job is None:
            record = self.service.jobs.get(job_id)
            if record is not None and sender in record.parties and record.state in (FAILED, CANCELLED):
                # the peer learns why, in this party's own (redacted) words, not just "not found"
                self._abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                            f"'{self.name}' {record.state} its role of job '{job_id}': "
                            f"{for_peers(self.name, record.error or 'no reason recorded')}", ENDED)
            self._abort(context, grpc.StatusCode.NOT_FOUND, f"job '{job_id}' is not running on '{self.name}'")
        if sender not in job.roles:
            self._abort(context, grpc.StatusCode.PERMISSION_DENIED,
                        f"'{sender}' is not a party of job '{job_id}'")
        return job

    # --- RPCs ---------------------------------------------------------------------------
    def Send(self, request_iterator: Iterator[pb.Chunk], context: grpc.ServicerContext) -> pb.SendReply:
        first = next(request_iterator, None)
        if first is None:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, "empty message stream", "protocol")
        sender = self._sender(context, first.sender)
        job = self._job(context, first.job_id, sender)
        limit = self.service.config.max_message_bytes
        if not first.key.startswith(f"{first.job_id}/") or not first.message_id:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                        f"message key {first.key!r} is not scoped to job '{first.job_id}'", "protocol")
        if first.total_bytes > limit:
            self._abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"message of {first.total_bytes} bytes exceeds the limit of {limit} bytes", "protocol")
        if first.total < 1 or first.index != 0:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, "a message starts with chunk 0 of >= 1", "protocol")
        try:
            job.mailbox.admit(sender, first.key, first.total_bytes)
        except MailboxFullError as exc:
            log.warning("%s: job '%s' fails: %s", self.name, first.job_id, exc)
            self._abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), "protocol")
        try:
            payload = self._receive(context, first, request_iterator)
        except BaseException:
            job.mailbox.release(sender, first.total_bytes)
            raise
        fresh = job.mailbox.put(sender, first.key, payload, f"{sender}/{first.message_id}", admitted=True)
        return pb.SendReply(duplicate=not fresh)

    def _receive(self, context: grpc.ServicerContext, first: pb.Chunk, request_iterator: Iterator[pb.Chunk]) -> bytes:
        """The whole message whose first chunk is `first`, every chunk checked."""
        parts, size = [first.data], len(first.data)
        for chunk in request_iterator:
            if (chunk.index != len(parts) or chunk.index >= first.total or chunk.message_id != first.message_id
                    or chunk.key != first.key or chunk.job_id != first.job_id or chunk.sender != first.sender):
                self._abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                            f"chunk {chunk.index} of message on {first.key!r} is out of order or mixed",
                            "protocol")
            parts.append(chunk.data)
            size += len(chunk.data)
            if size > first.total_bytes:
                self._abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                            f"message on {first.key!r} is longer than its declared size", "protocol")
        if len(parts) != first.total or size != first.total_bytes:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                        f"message on {first.key!r} is incomplete: {len(parts)}/{first.total} chunks, "
                        f"{size}/{first.total_bytes} bytes", "protocol")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def StartJob(self, request: pb.StartJobRequest, context: grpc.ServicerContext) -> pb.JobStatus:
        sender = self._sender(context, request.sender)
        self._valid_job_id(context, request.job_id)
        record = self.service.jobs.get(request.job_id)
        if record is not None and record.peer == sender and record.protocol == request.protocol \
                and record.state not in (FAILED, CANCELLED):
            claimed = self.service.jobs.claimed_by(request.job_id)
            if record.state in (QUEUED, RUNNING) and claimed not in (None, self.service.jobs.replica) \
                    and self.service.active_job(request.job_id) is None:  # a replica sharing the store
                self._abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                            f"job id '{request.job_id}' is already claimed by {claimed}", "protocol")
            return self.service.status(request.job_id, sender)  # a retried request: already accepted
        try:
            params = codec.decode(request.params, MAX_PARAMS_BYTES)
            datasets = {p: list(n.names) for p, n in request.datasets.items()}
            job = self.service.open_job(sender, request.job_id, request.protocol, params,
                                        dict(request.roles), datasets)
        except PolicyError as exc:
            log.warning("%s: policy refused job '%s' from '%s': %s", self.name, request.job_id, sender, exc)
            self._abort(context, grpc.StatusCode.PERMISSION_DENIED, str(exc), "policy")
        except (ProtocolError, CodecError) as exc:  # JobClaimedError: another replica runs it
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), "protocol")
        self.service.run_in_thread(job, params)
        return self.service.status(request.job_id, sender)

    def _known_job(self, context: grpc.ServicerContext, job_id: str, sender: str) -> pb.JobStatus:
        self._valid_job_id(context, job_id)
        record = self.service.jobs.get(job_id)
        if record is None:
            self._abort(context, grpc.StatusCode.NOT_FOUND, f"'{self.name}' has no job '{job_id}'")
        if sender != self.name and sender not in record.parties:
            self._abort(context, grpc.StatusCode.PERMISSION_DENIED,
                        f"'{sender}' is not a party of job '{job_id}'")
        return self.service.status(job_id, sender)

    def GetJob(self, request: pb.JobRef, context: grpc.ServicerContext) -> pb.JobStatus:
        sender = self._sender(context, request.sender)
        return self._known_job(context, request.job_id, sender)

    def CancelJob(self, request: pb.JobRef, context: grpc.ServicerContext) -> pb.JobStatus:
        sender = self._sender(context, request.sender)
        self._known_job(context, request.job_id, sender)
        record = self.service.jobs.get(request.job_id)
        assert record is not None
        guest = next(p for p, r in record.parties.items() if r == GUEST)
        if sender not in (self.name, guest):
            self._abort(context, grpc.StatusCode.PERMISSION_DENIED,
                        f"only the guest '{guest}' of job '{request.job_id}' (or the operator of "
                        f"'{self.name}') may cancel it; a host ends only its own role", "policy")
        self.service.cancel(request.job_id, sender)
        deadline = time.monotonic() + 5.0
        while self.service.active_job(request.job_id) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # let the role notice, so the reply shows the final state
        return self.service.status(request.job_id, sender)

    def ReportFailure(self, request: pb.FailureReport, context: grpc.ServicerContext) -> pb.Empty:
        sender = self._sender(context, request.sender)
        job = self._job(context, request.job_id, sender)
        log.info("%s: '%s' reports its role of job '%s' failed", self.name, sender, request.job_id)
        job.mailbox.fail_peer(sender, request.reason or "no reason given")
        return pb.Empty()

    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> pb.HealthReply:
        self._sender(context, request.sender)
        return pb.HealthReply(party=self.name, version=vfl_version,
                              running_jobs=self.service.running_jobs(), insecure=self.service.insecure,
                              compute=json.dumps(self.service.runtime.compute.describe()))


def _describe(compute: Mapping[str, Any]) -> str:
    """``dask (tls://10.0.0.5:8786: 8 workers, 32 threads, dashboard http://...)``."""
    if compute["engine"] == "local":
        return f"the local process pool ({compute['workers']} workers)"
    return (f"Dask at {compute['scheduler']} ({compute['workers']} workers, {compute['threads']} "
            f"threads; dashboard {compute['dashboard']})")


__all__ = ["QUEUED", "ActiveJob", "JobRuntime", "PartyService"]

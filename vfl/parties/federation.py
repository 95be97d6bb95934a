"""This party's handle on the federation: its own (embedded) service and a client for each peer.

Guest-side API (what a job runner calls)::

    from vfl.parties.federation import connect_federation

    # a) run the guest role in this process (the service is embedded here, on config.listen)
    with connect_federation(config) as fed:
        with fed.job(job_id, "job", params, roles, datasets) as ctx:   # starts every host
            outcome = run_guest(ctx, party, job)                       # ctx: a normal Context
        fed.wait_job("partner", job_id, timeout=60)                    # optional: hosts' end

    # b) hand the whole job to this party's running ``vfl serve`` (the service runs the
    #    registered entry for the guest role, too, and records the job in its store)
    with connect_federation(config, embedded=False) as fed:
        info = fed.run(job_id, "job", params, roles, datasets, timeout=3600)  # raises on failure
        info.result                                                   # the entry's return value

    fed.health(peer) / fed.start_job(peer, ...) / fed.job_status(peer, job_id)
    fed.cancel_job(peer, job_id) / fed.wait_job(peer, job_id, timeout)

``roles`` maps party -> "guest"/"host"; ``datasets`` maps party -> list of its dataset names
(each host's policy checks its own); ``params`` is any codec value (a dict).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from vfl.errors import PeerError
from vfl.names import check_name
from vfl.parties.config import PartyConfig
from vfl.parties.context import Context
from vfl.parties.discovery import registry_for
from vfl.parties.grpc_channel import JobInfo, PeerClient
from vfl.parties.service import PartyService, ServicePart


class Federation:
    """This party's handle on the federation: its own service plus clients for every peer."""

    def __init__(self, config: PartyConfig, service: PartyService | None = None) -> None:
        self.config = config
        self.name = config.name
        self.service = service
        self._clients: dict[str, PeerClient] = {}

    def client(self, party: str) -> PeerClient:
        """The connection to `party`'s service (this party's own service for its own name)."""
        if party not in self._clients:
            address = self.config.listen if party == self.name else registry_for(self.config).primary(party)
            self._clients[party] = PeerClient(self.config, party, address)
        return self._clients[party]

    def health(self, party: str) -> dict[str, Any]:
        return self.client(party).health()

    def start_job(
        self, party: str, job_id: str, protocol: str, params: Any, roles: Mapping[str, str],
        datasets: Mapping[str, list[str]],
    ) -> JobInfo:
        """Ask `party`'s service to run its role of `protocol`; PolicyError if its policy refuses."""
        check_name(job_id, "job_id")
        return self.client(party).start_job(job_id, protocol, params, roles, datasets)

    def job_status(self, party: str, job_id: str) -> JobInfo:
        return self.client(party).get_job(job_id)

    def cancel_job(self, party: str, job_id: str) -> JobInfo:
        return self.client(party).cancel_job(job_id)

    def wait_job(self, party: str, job_id: str, timeout: float, poll: float = 0.5) -> JobInfo:
        """Poll until the job is final on `party`; PeerError (naming it) after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job_status(party, job_id)
            if info.done:
                return info
            if time.monotonic() > deadline:
                raise PeerError(f"job '{job_id}' on '{party}' still {info.state} after {timeout:g}s")
            time.sleep(poll)

    def run(
        self, job_id: str, protocol: str, params: Any, roles: Mapping[str, str],
        datasets: Mapping[str, list[str]], timeout: float,
    ) -> JobInfo:
        """Hand a job whose guest is this party to this party's own service and wait for it.

        Raises the job's error (PolicyError, PeerError, ...) if it did not succeed.
        """
        self.start_job(self.name, job_id, protocol, params, roles, datasets)
        return self.wait_job(self.name, job_id, timeout).raise_for_state()

    @contextmanager
    def job(
        self, job_id: str, protocol: str, params: Any, roles: Mapping[str, str],
        datasets: Mapping[str, list[str]], on_progress: Callable[..., None] | None = None,
    ) -> Iterator[Context]:
        """Run the guest role here: records the job, starts every host, yields the Context.

        An exception in the block marks the job failed (and tells the hosts); leaving it
        normally marks it succeeded. Needs the embedded service (``connect_federation``).
        """
        check_name(job_id, "job_id")
        if self.service is None:
            raise PeerError(f"'{self.name}': running a role here needs the embedded service")
        with self.service.guest_session(job_id, protocol, params, roles, datasets, on_progress) as ctx:
            yield ctx

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


@contextmanager
def connect_federation(config: PartyConfig, embedded: bool = True,
                       parts: Sequence[ServicePart] = ()) -> Iterator[Federation]:
    """A Federation for `config`'s party; with `embedded`, also runs its service in-process
    (with the service `parts` given: see `PartyService`)."""
    service = PartyService(config, parts=parts).start() if embedded else None
    fed = Federation(config, service)
    try:
        yield fed
    finally:
        fed.close()
        if service is not None:
            service.stop()

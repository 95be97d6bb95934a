"""Where the replicas of a party are: the registry (``registry:`` in the party YAML).

Two backends:

- ``static``: a peer's replicas are its ``peers:`` entry (``address`` or ``addresses``);
  this party's own replicas are its ``listen`` address.
- ``zookeeper``: every `vfl serve` replica registers an ephemeral node
  ``<root>/<party>/replicas/<host:port>`` holding JSON ``{address, party, models, health}``
  (``models``: model id -> the version it serves); ZooKeeper deletes it when the replica's
  session ends (the process died: within ``session_timeout``). Clients list the live nodes.
  A peer whose ``peers:`` entry lists addresses is still reached at those (a partner of
  another organization, outside the shared registry).

The ZooKeeper view is refreshed every `POLL` seconds by one thread per process; if the
session is lost, clients keep the last replicas they knew (logged once) and the own node is
registered again when the session comes back. An unreachable ZooKeeper at start is a
`RegistryError` naming its address (after ``session_timeout`` seconds). ``kazoo`` is imported only when the backend is used.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from vfl.errors import PeerError
from vfl.parties.config import PartyConfig, RegistryConfig

log = logging.getLogger("vfl.registry")

POLL = 0.5  # seconds between two refreshes of the ZooKeeper view and of this replica's node


class RegistryError(PeerError):
    """The registry cannot be reached (its address is in the message)."""


Status = Callable[[], dict[str, Any]]


class Registry:
    """The static registry: the configured addresses (also the base of the ZooKeeper one)."""

    def __init__(self, config: PartyConfig) -> None:
        self.config = config

    def replicas(self, party: str) -> list[str]:
        """The addresses of `party`'s live replicas (this party's own included)."""
        if party == self.config.name:
            return [self.config.listen]
        if party not in self.config.peers:
            raise PeerError(f"'{party}' is not a configured peer of '{self.config.name}' (peers: "
                            f"{sorted(self.config.peers)})")
        return self.config.peers[party].all_addresses()

    def primary(self, party: str) -> str:
        """The replica a job's messages go to: the first live one (jobs stay on one replica,
        since a running job's mailbox is in that replica's memory)."""
        addresses = self.replicas(party)
        if not addresses:
            raise PeerError(f"no live replica of '{party}' is registered (registry of '{self.config.name}')")
        return addresses[0]

    def register(self, address: str, status: Status) -> None:
        """Announce this replica (nothing to do for static addresses)."""

    def healthy(self) -> bool:
        """Whether the registry session is alive (always, for static addresses)."""
        return True

    def close(self) -> None:
        """End the session (a registered replica's node disappears)."""


class ZooKeeperRegistry(Registry):
    """Live replicas from ZooKeeper, refreshed by a background thread."""

    def __init__(self, config: PartyConfig, settings: RegistryConfig) -> None:
        super().__init__(config)
        from kazoo.client import KazooClient  # only when a zookeeper registry is configured
        from kazoo.handlers.threading import KazooTimeoutError

        self.settings = settings
        self.hosts = str(settings.hosts)
        self._zk = KazooClient(hosts=self.hosts, timeout=settings.session_timeout)
        try:
            self._zk.start(timeout=settings.session_timeout)
        except KazooTimeoutError:
            self._zk.close()
            raise RegistryError(f"registry: cannot reach ZooKeeper at {self.hosts} within "
                                f"{settings.session_timeout:g}s (registry.hosts of '{config.name}')") from None
        self._zk.add_listener(self._state_changed)
        self._lock = threading.Lock()
        self._known: dict[str, list[str]] = {}
        self._own: tuple[str, Status] | None = None
        self._registered = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vfl-registry", daemon=True)
        self._thread.start()

    def _path(self, party: str) -> str:
        return f"{self.settings.root}/{party}/replicas"

    def replicas(self, party: str) -> list[str]:
        entry = self.config.peers.get(party)
        if entry is not None and entry.all_addresses():
            return entry.all_addresses()
        if party != self.config.name and entry is None:
            return super().replicas(party)  # not a peer: the error names the configured ones
        with self._lock:
            known = self._known.get(party)
        if known is None:  # first ask: read now, then keep it fresh in the background
            known = self._read(party)
            with self._lock:
                self._known[party] = known
        return known

    def nodes(self, party: str) -> dict[str, dict[str, Any]]:
        """The data of `party`'s registered replicas, by address (read now)."""
        path = self._path(party)
        result = {}
        for child in self._zk.get_children(path) if self._zk.exists(path) else []:
            try:
                data, _stat = self._zk.get(f"{path}/{child}")
            except Exception:  # noqa: BLE001 - the node went away between the two reads
                continue
            result[child] = json.loads(data.decode())
        return result

    def _read(self, party: str) -> list[str]:
        path = self._path(party)
        return sorted(self._zk.get_children(path)) if self._zk.exists(path) else []

    def register(self, address: str, status: Status) -> None:
        self._own = (address, status)
        self._publish()

    def healthy(self) -> bool:
        return bool(self._zk.connected) and (self._own is None or self._registered)

    def _publish(self) -> None:
        """Create this replica's ephemeral node, or update its data (models, health)."""
        if self._own is None:
            return
        from kazoo.exceptions import NodeExistsError, NoNodeError

        address, status = self._own
        path = f"{self._path(self.config.name)}/{address}"
        data = json.dumps({"address": address, "party": self.config.name, **status()},
                          sort_keys=True).encode()
        try:
            current, stat = self._zk.get(path)
        except NoNodeError:
            try:
                self._zk.create(path, data, ephemeral=True, makepath=True)
            except NodeExistsError:  # a previous session of this address not yet expired
                return
            log.info("%s: registered replica %s in ZooKeeper %s", self.config.name, address, self.hosts)
            self._registered = True
            return
        if stat.ephemeralOwner != self._zk.client_id[0]:
            return  # the node of a previous run of this address: wait until its session ends
        self._registered = True
        if current != data:
            self._zk.set(path, data)

    def _loop(self) -> None:
        lost = False
        while not self._stop.wait(POLL):
            try:
                self._publish()
                with self._lock:
                    parties = list(self._known)
                fresh = {party: self._read(party) for party in parties}
                with self._lock:
                    self._known.update(fresh)
                if lost:
                    log.warning("%s: ZooKeeper %s reachable again; replicas: %s", self.config.name,
                                self.hosts, fresh)
                lost = False
            except Exception as exc:  # noqa: BLE001 - keep serving from the last known replicas
                if not lost:
                    log.warning("%s: ZooKeeper %s: %s; the replicas stay as last known",
                                self.config.name, self.hosts, type(exc).__name__)
                lost = True

    def _state_changed(self, state: str) -> None:
        """kazoo's session events (SUSPENDED: the connection dropped; LOST: the session
        expired, so this replica's node is gone until the loop registers it again)."""
        if state == "CONNECTED":
            log.info("%s: ZooKeeper %s connected", self.config.name, self.hosts)
            return
        if state == "LOST":
            self._registered = False
        with self._lock:
            known = dict(self._known)
        log.warning("%s: ZooKeeper %s unreachable (session %s); serving from the last known "
                    "replicas %s", self.config.name, self.hosts, state.lower(), known)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * POLL + 1)
        self._zk.stop()
        self._zk.close()


_open: dict[tuple[str, str, str], Registry] = {}
_open_lock = threading.Lock()


def registry_for(config: PartyConfig) -> Registry:
    """This process's registry for `config`'s party (one ZooKeeper session per party and
    ensemble, opened at the first call).

    Raises
    ------
    RegistryError
        ZooKeeper cannot be reached; the message names its address.
    """
    settings = config.registry
    if settings.backend == "static":
        return Registry(config)
    key = (config.name, str(settings.hosts), settings.root)
    with _open_lock:
        registry = _open.get(key)
        if registry is None:
            registry = _open[key] = ZooKeeperRegistry(config, settings)
        return registry


def close_registries() -> None:
    """End every ZooKeeper session this process opened."""
    with _open_lock:
        for registry in _open.values():
            registry.close()
        _open.clear()

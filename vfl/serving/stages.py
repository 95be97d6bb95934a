"""Moving every party of a model to one version together: federated promote and rollback.

Each party serves its own part of a model, and the guest refuses to score unless every host
serves the same version. Moving one party alone therefore breaks scoring until the others
follow; `move_all` moves them together:

    guest: the target version: the one asked (promote), or its own previous production
           version (rollback; none -> nothing to do, say so)
    guest -> every host of the model: "could you move to it?" (dry run)
    host:  its own policy must allow the guest the protocol "promote" on the served model's
           dataset, the guest must be a party of that version's training, and the version
           must be here; otherwise it refuses, naming what refused
    guest -> every host: "move" (only when every host said yes); then the guest moves itself

A party already serving the target answers without change, so after a failure half-way the
same command can simply be run again.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfl.errors import DataError, PolicyError
from vfl.net.balance import Balancer, NoReplicaError, ReplicaCallError
from vfl.net.status import PeerUnreachableError
from vfl.parties.config import PartyConfig
from vfl.parties.discovery import registry_for
from vfl.serving.client import MAX_MESSAGE, rpc_error
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.proto import serving_pb2_grpc as spb_grpc
from vfl.store.models import ModelStore

PROMOTE = "promote"  # the protocol name a host's policy allows for federated promote/rollback
ACTIONS = ("promote", "rollback")


@dataclass(frozen=True)
class Moved:
    """One party's serving version before and after."""

    party: str
    role: str
    previous: str | None
    version: str


def check_action(action: str) -> None:
    if action not in ACTIONS:
        raise DataError(f"action must be one of {ACTIONS}, got {action!r}")


def stage_here(store: ModelStore, model_id: str, action: str, version: str, *, peer: str,
               dry_run: bool) -> tuple[str | None, str]:
    """This party (a host) moves its part of `model_id` to `version` for `peer` (the guest).

    The caller has checked the host's policy. Returns (previous, now) production versions.
    """
    check_action(action)
    target = store.get(model_id, version)
    if target.role != "host":
        raise DataError(f"'{store.party}' holds the {target.role} part of model '{model_id}', "
                        "not a host part")
    if peer not in target.peers:
        raise PolicyError(f"'{peer}' took no part in training model '{model_id}' version "
                          f"'{version}' on '{store.party}'")
    current = _current(store, model_id)
    if current == version or dry_run:
        return current, version
    if action == "promote" or current is None:
        store.promote(model_id, version)
    else:
        store.rollback(model_id, version)
    return current, version


def _current(store: ModelStore, model_id: str) -> str | None:
    try:
        return store.get(model_id).version
    except DataError:
        return None


def move_all(config: PartyConfig, model_id: str, action: str, version: str | None = None) -> list[Moved]:
    """The guest moves every party of `model_id` to one version; returns each party's move.

    ``promote`` moves to `version`; ``rollback`` to the guest's previous production version
    (an empty list: there is none, nothing changed). Every host is asked first whether it
    can and may (its policy decides); if one refuses, no party changes.
    """
    check_action(action)
    store = ModelStore.of(config)
    if action == "promote":
        if version is None:
            raise DataError(f"promoting model '{model_id}' needs a version")
        target = store.get(model_id, version)
    else:
        previous = store.previous(model_id)
        if previous is None:
            return []
        target = previous
    if target.role != "guest":
        raise DataError(f"'{config.name}' holds the {target.role} part of model '{model_id}'; "
                        "a federated promote or rollback is run on the guest")
    current = _current(store, model_id)
    hosts = {name: _ModelsClient(config, name) for name in target.peers}
    try:
        for host in hosts.values():
            host.stage(model_id, action, target.version, dry_run=True)
        moved = [Moved(config.name, "guest", current, target.version)]
        for name, host in hosts.items():
            reply = host.stage(model_id, action, target.version, dry_run=False)
            moved.append(Moved(name, "host", reply.previous or None, reply.version))
    finally:
        for host in hosts.values():
            host.close()
    if current != target.version:  # the guest last: it starts scoring with the new version
        if action == "promote" or current is None:
            store.promote(model_id, target.version)
        else:
            store.rollback(model_id, target.version)
    return moved


class _ModelsClient:
    """One host's `Models` service, over mutual TLS, on any of its live replicas (they share
    one model store, and moving to the version already served changes nothing)."""

    def __init__(self, config: PartyConfig, name: str) -> None:
        if name not in config.peers:
            raise DataError(f"'{name}' is not a configured peer of '{config.name}' "
                            f"(peers: {sorted(config.peers)})")
        self.owner, self.name = config.name, name
        self.timeout = config.timeouts.connect
        registry = registry_for(config)
        self._replicas = Balancer(name, lambda: registry.replicas(name), spb_grpc.ModelsStub,
                                  config.tls_files(), MAX_MESSAGE)

    def stage(self, model_id: str, action: str, version: str, dry_run: bool) -> spb.StageReply:
        request = spb.StageRequest(sender=self.owner, model_id=model_id, action=action,
                                   version=version, dry_run=dry_run)
        what = f"{'checking ' if dry_run else ''}{action} of model '{model_id}' to version '{version}'"
        try:
            reply: spb.StageReply = self._replicas.call(
                lambda stub, left: stub.Stage(request, timeout=left), self.timeout)
        except ReplicaCallError as exc:
            raise rpc_error(exc.rpc, f"host '{self.name}' ({exc.address})", what, self.timeout) from None
        except NoReplicaError as exc:
            raise PeerUnreachableError(f"{exc} ({what})") from None
        return reply

    def close(self) -> None:
        self._replicas.close()

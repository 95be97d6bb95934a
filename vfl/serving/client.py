"""gRPC clients of split inference.

`GrpcHost` is how the guest reaches one host's partial results (a `HostClient`): every call
has a deadline of the configured timeout, goes to one of the host's live replicas (found by
the party's registry, balanced and failed over by `vfl.net.balance.Balancer`), and every
failure becomes an error that names the host, the replica's address and what was asked.
`ScoringClient` is what a bank application uses to ask the guest's service (any of its
replicas) for scores (any certificate issued by the federation's CA).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import numpy as np
import pandas as pd

from vfl.crypto.tls import TlsFiles
from vfl.errors import (
    DataError,
    PeerError,
    PeerTimeoutError,
    VflError,
)
from vfl.net.balance import Balancer, NoReplicaError, ReplicaCallError
from vfl.net.status import PeerUnreachableError, refusal
from vfl.parties.config import PartyConfig
from vfl.parties.discovery import registry_for
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.proto import serving_pb2_grpc as spb_grpc
from vfl.serving.scoring import Partials
from vfl.serving.wire import ids_to_pb, partials_from_pb

MAX_MESSAGE = 64 << 20
IDS_PER_CALL = 50_000


def rpc_error(exc: grpc.RpcError, where: str, what: str, timeout: float | None = None) -> VflError:
    """A gRPC failure as the vfl error a caller must act on, naming who failed at what."""
    refused = refusal(exc, where, what)
    if refused is not None:
        return refused
    code: grpc.StatusCode = exc.code()
    detail: str = exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PeerTimeoutError(f"{where} did not answer {what} within {timeout:g}s")
    if code == grpc.StatusCode.UNAVAILABLE:
        return PeerUnreachableError(f"{where} is unreachable ({what}): {detail}")
    return PeerError(f"{where} failed {what}: [{code.name}] {detail}")


class GrpcHost:
    """A host's partial results for one model version, over its party service."""

    def __init__(self, config: PartyConfig, name: str, model_id: str, version: str,
                 timeout: float | None = None, ids_per_call: int = IDS_PER_CALL) -> None:
        if name not in config.peers:
            raise PeerError(f"'{name}' is not a configured peer of '{config.name}' "
                            f"(peers: {sorted(config.peers)})")
        self.name = name
        self.owner = config.name
        self.model_id = model_id
        self.version = version
        self.timeout = timeout or config.serving.timeout
        self.ids_per_call = ids_per_call
        registry = registry_for(config)
        self._replicas = Balancer(name, lambda: registry.replicas(name), spb_grpc.InferenceStub,
                                  config.tls_files(), MAX_MESSAGE)

    def _ask(self, what: str, invoke: Any) -> Any:
        """`invoke(stub, seconds)` on a live replica (another if it is gone), as a vfl error."""
        try:
            return self._replicas.call(invoke, self.timeout)
        except ReplicaCallError as exc:
            raise rpc_error(exc.rpc, f"host '{self.name}' ({exc.address})", what, self.timeout) from None
        except NoReplicaError as exc:
            raise PeerUnreachableError(f"{exc} ({what})") from None

    def describe(self) -> spb.ModelInfo:
        request = spb.DescribeRequest(sender=self.owner, model_id=self.model_id)
        info: spb.ModelInfo = self._ask(f"describing model '{self.model_id}'",
                                        lambda stub, left: stub.Describe(request, timeout=left))
        return info

    def partials(self, ids: pd.Series) -> Partials:
        if len(ids) <= self.ids_per_call:
            return self._call(ids)
        parts = [self._call(ids.iloc[i:i + self.ids_per_call])
                 for i in range(0, len(ids), self.ids_per_call)]
        width = max(p.values.shape[1] for p in parts)
        return Partials(np.concatenate([p.values.reshape(-1, width) for p in parts]),
                        np.concatenate([p.found for p in parts]))

    def _call(self, ids: pd.Series) -> Partials:
        request = spb.PartialsRequest(sender=self.owner, model_id=self.model_id, version=self.version,
                                      ids=ids_to_pb(ids))
        what = f"partial results of model '{self.model_id}' version '{self.version}' for {len(ids)} id(s)"
        reply = self._ask(what, lambda stub, left: stub.Partials(request, timeout=left))
        if reply.version != self.version:  # never combine two trainings' parts
            raise DataError(f"model '{self.model_id}': '{self.owner}' asked for version "
                            f"'{self.version}' but host '{self.name}' answered with version "
                            f"'{reply.version}'")
        return partials_from_pb(reply, len(ids), self.name)

    def close(self) -> None:
        self._replicas.close()


class ScoringClient:
    """A bank application's connection to the guest's Score RPC (mutual TLS), balanced over
    the guest's replicas: a request that fails because its replica is gone is sent to another.

    Parameters
    ----------
    address
        ``host:port`` of the guest's service, a list of its replicas' addresses, or a function
        returning the live ones (e.g. ``registry_for(config).replicas("bank")``; see
        `ScoringClient.of`).
    guest
        The guest's party name (its certificate's name).
    tls
        The application's CA, certificate and key.
    timeout
        Seconds per request, failover included.
    """

    def __init__(self, address: str | Sequence[str] | Callable[[], Sequence[str]], guest: str,
                 tls: TlsFiles | None, timeout: float = 30.0) -> None:
        if callable(address):
            resolve = address
        else:
            fixed = [address] if isinstance(address, str) else list(address)
            resolve = lambda: fixed  # noqa: E731
        self.guest, self.timeout = guest, timeout
        self._replicas = Balancer(guest, resolve, spb_grpc.ScoringStub, tls, MAX_MESSAGE)

    @classmethod
    def of(cls, config: PartyConfig, tls: TlsFiles | None, timeout: float = 30.0) -> ScoringClient:
        """A client of `config`'s party, reaching its live replicas through its registry."""
        registry = registry_for(config)
        return cls(lambda: registry.replicas(config.name), config.name, tls, timeout)

    def score(self, model_id: str, ids: Any, features: pd.DataFrame | None = None,
              request_id: str = "") -> pd.DataFrame:
        """One row per id: id, score (NaN if not scorable), missing (parties lacking it)."""
        ids = pd.Series(ids).reset_index(drop=True)
        body = "" if features is None else json.dumps(
            {c: features[c].tolist() for c in features.columns})
        request = spb.ScoreRequest(model_id=model_id, ids=ids_to_pb(ids), features_json=body,
                                   request_id=request_id)
        what = f"scoring {len(ids)} id(s) with model '{model_id}'"
        try:
            reply = self._replicas.call(lambda stub, left: stub.Score(request, timeout=left), self.timeout)
        except ReplicaCallError as exc:
            raise rpc_error(exc.rpc, f"guest '{self.guest}' ({exc.address})", what, self.timeout) from None
        except NoReplicaError as exc:
            raise PeerUnreachableError(f"{exc} ({what})") from None
        result = pd.DataFrame({"id": ids, "score": np.asarray(reply.scores, dtype=np.float64),
                               "missing": list(reply.missing)})
        result.attrs.update(request_id=reply.request_id, version=reply.version,
                            versions=dict(reply.versions), host_errors=dict(reply.host_errors))
        return result

    def close(self) -> None:
        self._replicas.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

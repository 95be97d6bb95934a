"""gRPC clients of split inference.

`GrpcHost` is how the guest reaches one host's partial results (a `HostClient`): every call
has a deadline of the configured timeout, and every failure becomes an error that names the
host, its address and what was asked. `ScoringClient` is what a bank application uses to ask
the guest's service for scores (any certificate issued by the federation's CA).
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import numpy as np
import pandas as pd

from vfl.config import PartyConfig
from vfl.crypto.tls import TlsFiles
from vfl.errors import (
    DataError,
    PeerError,
    PeerTimeoutError,
    PolicyError,
    ProtocolError,
    UnknownModelError,
    VflError,
)
from vfl.parties.grpc_channel import ERROR_KIND, PeerUnreachableError
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.proto import serving_pb2_grpc as spb_grpc
from vfl.serving.scoring import Partials
from vfl.serving.wire import ids_to_pb, partials_from_pb

MAX_MESSAGE = 64 << 20
IDS_PER_CALL = 50_000
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.enable_retries", 0),
    # a host that was down is retried soon after it is back, not after minutes of backoff
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def secure_channel(address: str, server_name: str, tls: TlsFiles | None) -> grpc.Channel:
    """mTLS to `server_name`'s service (its certificate must name it); plaintext if `tls` is None."""
    if tls is None:
        return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    ca, cert, key = tls.read()
    credentials = grpc.ssl_channel_credentials(ca, key, cert)
    return grpc.secure_channel(address, credentials,
                               options=[*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", server_name)])


def rpc_error(exc: grpc.RpcError, where: str, what: str, timeout: float | None = None) -> VflError:
    """A gRPC failure as the vfl error a caller must act on, naming who failed at what."""
    code: grpc.StatusCode = exc.code()
    detail: str = exc.details() or ""
    kind = dict(exc.trailing_metadata() or ()).get(ERROR_KIND)
    if kind == "policy":
        return PolicyError(f"{where} refused {what}: {detail}")
    if kind == "unknown-model":
        return UnknownModelError(f"{where}: {detail}")
    if kind == "data":
        return DataError(f"{where}: {detail}")
    if kind == "protocol":
        return ProtocolError(f"{where} rejected {what}: {detail}")
    if kind == "peer":  # `where` answered, but a party behind it failed: keep its account
        cls = PeerTimeoutError if code == grpc.StatusCode.DEADLINE_EXCEEDED else PeerError
        return cls(f"{where} could not answer {what}: {detail}")
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
        self.address = config.peers[name].address
        self.model_id = model_id
        self.version = version
        self.timeout = timeout or config.serving.timeout
        self.ids_per_call = ids_per_call
        tls = None if config.tls is None else TlsFiles(config.tls.ca, config.tls.cert, config.tls.key)
        self._channel = secure_channel(self.address, name, tls)
        self._stub = spb_grpc.InferenceStub(self._channel)

    @property
    def where(self) -> str:
        return f"host '{self.name}' ({self.address})"

    def describe(self) -> spb.ModelInfo:
        what = f"describing model '{self.model_id}'"
        try:
            return self._stub.Describe(spb.DescribeRequest(sender=self.owner, model_id=self.model_id),
                                       timeout=self.timeout)
        except grpc.RpcError as exc:
            raise rpc_error(exc, self.where, what, self.timeout) from None

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
        try:
            reply = self._stub.Partials(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise rpc_error(exc, self.where, what, self.timeout) from None
        return partials_from_pb(reply, len(ids), self.name)

    def close(self) -> None:
        self._channel.close()


class ScoringClient:
    """A bank application's connection to the guest's Score RPC (mutual TLS)."""

    def __init__(self, address: str, guest: str, tls: TlsFiles | None, timeout: float = 30.0) -> None:
        self.address, self.guest, self.timeout = address, guest, timeout
        self._channel = secure_channel(address, guest, tls)
        self._stub = spb_grpc.ScoringStub(self._channel)

    def score(self, model_id: str, ids: Any, features: pd.DataFrame | None = None,
              request_id: str = "") -> pd.DataFrame:
        """One row per id: id, score (NaN if not scorable), missing (parties lacking it)."""
        ids = pd.Series(ids).reset_index(drop=True)
        body = "" if features is None else json.dumps(
            {c: features[c].tolist() for c in features.columns})
        request = spb.ScoreRequest(model_id=model_id, ids=ids_to_pb(ids), features_json=body,
                                   request_id=request_id)
        try:
            reply = self._stub.Score(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise rpc_error(exc, f"guest '{self.guest}' ({self.address})",
                            f"scoring {len(ids)} id(s) with model '{model_id}'", self.timeout) from None
        result = pd.DataFrame({"id": ids, "score": np.asarray(reply.scores, dtype=np.float64),
                               "missing": list(reply.missing)})
        result.attrs.update(request_id=reply.request_id, version=reply.version,
                            host_errors=dict(reply.host_errors))
        return result

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

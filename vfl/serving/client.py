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

from vfl.crypto.tls import TlsFiles
from vfl.errors import (
    PeerError,
    PeerTimeoutError,
    VflError,
)
from vfl.net.channel import open_channel
from vfl.net.status import PeerUnreachableError, refusal
from vfl.parties.config import PartyConfig
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
        self.address = config.peers[name].address
        self.model_id = model_id
        self.version = version
        self.timeout = timeout or config.serving.timeout
        self.ids_per_call = ids_per_call
        self._channel = open_channel(self.address, name, config.tls_files(), MAX_MESSAGE)
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
        self._channel = open_channel(address, guest, tls, MAX_MESSAGE)
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

"""The gRPC adapters of serving: the host's `Describe`/`Partials`, the guest's `Score` and the
federated `Stage` (promote/rollback) RPCs, each authenticating its caller by certificate
and answering refusals with the status of `vfl.net.status`; `attach` adds them to a party
service.
"""

from __future__ import annotations

import logging
import threading
from typing import NoReturn

import grpc

from vfl.errors import PolicyError, VflError
from vfl.net.http_server import HttpEndpoint
from vfl.net.identity import IdentityRefused, caller_identity
from vfl.net.status import ERROR_KIND, status_of
from vfl.parties.config import PartyConfig
from vfl.parties.metrics_http import serve_metrics
from vfl.parties.service import PartyService
from vfl.serving import stages
from vfl.serving.cache import Serving
from vfl.serving.http_api import serve_http
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.proto import serving_pb2_grpc as spb_grpc
from vfl.serving.wire import features_from_json, ids_from_pb, parse_json, partials_to_pb

log = logging.getLogger("vfl.serving")


def _abort(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    code, kind = status_of(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.error("serving: unexpected error", exc_info=exc)
        context.abort(code, "internal error (details in the serving party's log)")
    context.set_trailing_metadata(((ERROR_KIND, kind),))
    context.abort(code, str(exc))
    raise AssertionError("unreachable")


def _identity(context: grpc.ServicerContext, insecure: bool, claimed: str = "") -> str:
    """The caller's name from its verified certificate (plaintext mode: the claimed name)."""
    if insecure:
        return claimed or "anonymous"
    try:
        return caller_identity(context, claimed or None)
    except IdentityRefused as exc:
        context.abort(exc.code, str(exc))
        raise AssertionError("unreachable") from None  # context.abort always raises


class InferenceServicer(spb_grpc.InferenceServicer):
    """Host side: a peer asks for this party's partial results."""

    def __init__(self, serving: Serving, insecure: bool) -> None:
        self.serving, self.insecure = serving, insecure

    def _peer(self, context: grpc.ServicerContext, claimed: str) -> str:
        peer = _identity(context, self.insecure, claimed)
        if peer not in self.serving.config.peers:
            log.warning("%s: refused inference for '%s' (not a configured peer)", self.serving.name, peer)
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"'{peer}' is not a configured peer of '{self.serving.name}'")
        return peer

    def _refused(self, peer: str, model_id: str, exc: VflError) -> None:
        log.warning("%s: inference for '%s' on model %r refused: %s", self.serving.name, peer,
                    model_id[:128], type(exc).__name__)

    def Describe(self, request: spb.DescribeRequest, context: grpc.ServicerContext) -> spb.ModelInfo:
        peer = self._peer(context, request.sender)
        try:
            return self.serving.describe(peer, request.model_id)
        except VflError as exc:
            self._refused(peer, request.model_id, exc)
            _abort(context, exc)

    def Partials(self, request: spb.PartialsRequest, context: grpc.ServicerContext) -> spb.PartialsReply:
        peer = self._peer(context, request.sender)
        try:
            ids = ids_from_pb(request.ids, self.serving.config.serving.max_ids, peer)
            version, answer = self.serving.partials(peer, request.model_id, request.version, ids)
            return partials_to_pb(answer, version)
        except VflError as exc:
            self._refused(peer, request.model_id, exc)
            _abort(context, exc)


class ModelsServicer(spb_grpc.ModelsServicer):
    """Host side of a federated promote/rollback: the guest asks, this party's policy decides."""

    def __init__(self, serving: Serving, insecure: bool) -> None:
        self.serving, self.insecure = serving, insecure

    def Stage(self, request: spb.StageRequest, context: grpc.ServicerContext) -> spb.StageReply:
        peer = _identity(context, self.insecure, request.sender)
        try:
            if peer not in self.serving.config.peers:
                raise PolicyError(f"'{peer}' is not a configured peer of '{self.serving.name}'")
            self.serving.check_peer(peer, request.model_id, stages.PROMOTE)
            previous, version = stages.stage_here(self.serving.store, request.model_id, request.action,
                                                  request.version, peer=peer, dry_run=request.dry_run)
        except VflError as exc:
            log.warning("%s: %s of model %r for '%s' refused: %s", self.serving.name, request.action[:16],
                        request.model_id[:128], peer, type(exc).__name__)
            _abort(context, exc)
        if not request.dry_run:
            log.info("%s: model '%s' %s by '%s': version '%s' (was '%s')", self.serving.name,
                     request.model_id, request.action, peer, version, previous)
        return spb.StageReply(party=self.serving.name, previous=previous or "", version=version)


class ScoringServicer(spb_grpc.ScoringServicer):
    """Guest side: an application whose certificate identity is in ``serving.clients`` asks
    for scores; anyone else is refused before anything is read."""

    def __init__(self, serving: Serving, insecure: bool) -> None:
        self.serving, self.insecure = serving, insecure

    def Score(self, request: spb.ScoreRequest, context: grpc.ServicerContext) -> spb.ScoreReply:
        client = _identity(context, self.insecure)
        n_ids = len(request.ids.ints) or len(request.ids.strings)
        try:
            if not self.serving.allows(client):
                raise PolicyError(f"'{client}' is not in serving.clients of '{self.serving.name}'")
            ids = ids_from_pb(request.ids, self.serving.config.serving.max_ids, client)
            features = None
            if request.features_json:
                features = features_from_json(parse_json(request.features_json), len(ids))
            out = self.serving.score(request.model_id, ids, features, request.request_id, client, kind="grpc")
        except Exception as exc:  # noqa: BLE001 - every failure is logged, audited and mapped
            self.serving.failed(client, request.model_id[:128], request.request_id[:64],
                                status_of(exc)[0].name, exc, n_ids, adapter="grpc")
            _abort(context, exc)
        return spb.ScoreReply(
            request_id=out.request_id, model_id=out.model_id, version=out.version,
            scores=out.result["score"].tolist(), missing=out.result["missing"].tolist(),
            host_errors=out.result.attrs.get("host_errors", {}), versions=out.versions,
        )


class _Attached:
    """What `attach` adds to a party service, closed when the service stops."""

    def __init__(self, serving: Serving, http: HttpEndpoint | None) -> None:
        self.serving, self.http = serving, http

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        self.serving.close()


def attach(service: PartyService, server: grpc.Server) -> _Attached:
    """A `ServicePart` of the party service: host the inference, scoring and model RPCs (and
    the guest's HTTP endpoint, if configured) on the service's gRPC server."""
    serving = Serving(service.config, prometheus=service.metrics, compute=service.runtime.compute)
    service.metrics.watch(serving.served_versions)
    service.readiness.add("models", serving.unloaded)
    spb_grpc.add_InferenceServicer_to_server(InferenceServicer(serving, service.insecure), server)
    spb_grpc.add_ScoringServicer_to_server(ScoringServicer(serving, service.insecure), server)
    spb_grpc.add_ModelsServicer_to_server(ModelsServicer(serving, service.insecure), server)
    http = serve_http(serving)
    threading.Thread(target=serving.warm, name=f"vfl-{serving.name}-warm", daemon=True).start()
    return _Attached(serving, http)


def party_service(config: PartyConfig) -> PartyService:
    """The party service as ``vfl serve`` runs it: the job RPCs plus serving's, and the
    metrics port (``metrics.listen``)."""
    return PartyService(config, parts=[serve_metrics, attach])

"""The guest's servable model: its own part from its store, every host reached over gRPC.

Loading checks that every host serves the same version of the model (the version is the id
of the training job both sides took part in): scoring with parts of two different trainings
would give wrong scores without any error, so a mismatch refuses to load, naming the host
and both versions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vfl.connectors.dataset import id_types
from vfl.errors import ConfigError, DataError, PeerError
from vfl.parties.compute import Compute, connect
from vfl.parties.config import PartyConfig
from vfl.serving.batch import BatchSummary, score_batch
from vfl.serving.bundle import ModelBundle
from vfl.serving.client import GrpcHost
from vfl.serving.scoring import GuestScorer
from vfl.serving.sources import source_for
from vfl.store.models import ModelRecord, ModelStore

log = logging.getLogger("vfl.serving")

BATCH_PROGRESS = "batch"  # folder of the store where interrupted batch runs keep their progress


def feature_source(config: PartyConfig, model_id: str, columns: list[str],
                   compute: Compute | None = None) -> Any:
    """This party's configured feature source for `model_id` (None when not configured),
    reading exactly `columns`: the raw columns the model part was trained on; a file table is
    kept on the workers of a `compute` engine that keeps tables there."""
    served = config.serving.models.get(model_id)
    if served is None:
        return None
    if served.dataset not in config.datasets:
        raise ConfigError(f"serving.models.{model_id}.dataset: '{config.name}' has no dataset "
                          f"'{served.dataset}' (datasets: {sorted(config.datasets)})")
    return source_for(config.datasets[served.dataset], served.callable, name=served.dataset,
                      columns=columns, compute=compute)


@dataclass
class ServedGuestModel:
    """A guest part loaded from the model store with its scorer and host connections (the
    trained model of a job is `vfl.jobs.train.GuestModel`); `close()` releases them."""

    record: ModelRecord
    scorer: GuestScorer
    hosts: list[GrpcHost]

    @property
    def version(self) -> str:
        return self.record.version

    def close(self) -> None:
        self.scorer.close()
        for host in self.hosts:
            host.close()


def load_guest_model(config: PartyConfig, store: ModelStore, model_id: str,
                     version: str | None = None, source: Any = None,
                     compute: Compute | None = None) -> ServedGuestModel:
    """The guest's part of `model_id` (production version unless given), checked with every
    host; its feature source is `source`, else the configured one (on `compute`)."""
    record = store.get(model_id, version)
    if record.role != "guest":
        raise DataError(f"'{config.name}' holds the {record.role} part of model '{model_id}'; "
                        "scores are asked from the guest's service")
    bundle = ModelBundle.load(store.open(record))
    hosts = [GrpcHost(config, name, model_id, record.version) for name in record.peers]
    try:
        for host in hosts:
            try:
                check_counterpart(config.name, record, host)
            except PeerError as exc:  # down or silent, not a mismatch
                if config.serving.on_host_error != "missing":
                    raise
                # safe to go on: a host checks the version asked on every call and refuses another
                log.warning("%s: host '%s' unreachable while loading model '%s' (%s); its ids are "
                            "reported missing until it answers", config.name, host.name, model_id, exc)
        if source is None:
            source = feature_source(config, model_id, bundle.columns, compute)
        if source is not None:  # a table kept on the workers is built now, not in the first lookup
            source.prepare()
        scorer = GuestScorer(bundle, hosts, source, on_host_error=config.serving.on_host_error)
    except BaseException:
        for host in hosts:
            host.close()
        raise
    log.info("%s: serving model '%s' version '%s' with hosts %s", config.name, model_id,
             record.version, record.peers)
    return ServedGuestModel(record, scorer, hosts)


def check_counterpart(me: str, record: ModelRecord, host: GrpcHost) -> None:
    """Refuse a host whose part of the model is another training's (or another kind, or not a host)."""
    info = host.describe()
    if info.version != record.version:
        raise DataError(
            f"model '{record.model_id}': '{me}' serves version '{record.version}' but host "
            f"'{host.name}' serves version '{info.version}'; promote the same version on both"
        )
    if info.kind != record.kind or info.role != "host":
        raise DataError(f"model '{record.model_id}' version '{record.version}': host '{host.name}' "
                        f"holds a {info.kind} {info.role} part, expected a {record.kind} host part")


def batch_score(
    config: PartyConfig, model_id: str, source: str, sink: str, *, id_column: str | None = None,
    chunk_rows: int = 50_000, retries: int = 2, retry_delay: float = 1.0, version: str | None = None,
    restart: bool = False, on_progress: Callable[[int, BatchSummary], None] | None = None,
) -> BatchSummary:
    """`vfl score` from Python: ids (and guest features, if the source has them) in chunks from
    any connector, every host over its service, id + score + missing + model version + scoring
    time to any sink (replaced once every chunk is scored).

    Resumable: the progress of each sink is kept in the party's store (``<store>/batch``), so
    a rerun after an interruption scores only the chunks not yet scored (`restart` discards
    it). Repeated ids follow the served dataset's ``duplicates:`` setting. With ``compute:
    {engine: dask}`` the guest's served file table is read, looked up and preprocessed on the
    party's workers (`vfl.serving.partitioned`), never loaded here.
    """
    store = ModelStore.of(config)
    compute = connect(config.compute, config.tls, config.name)  # ConfigError naming its scheduler
    try:
        model = load_guest_model(config, store, model_id, version, compute=compute)
    except BaseException:
        compute.close()
        raise
    served = config.serving.models.get(model_id)
    spec = config.datasets.get(served.dataset) if served else None
    if id_column is None:
        id_column = spec.id_columns[0] if spec is not None else "id"
    id_type = id_types(spec).get(id_column) if spec is not None else None
    try:
        return score_batch(model.scorer, source, sink, id_column=id_column, version=model.version,
                           chunk_rows=chunk_rows, id_type=id_type, retries=retries, retry_delay=retry_delay,
                           duplicates=spec.duplicates if spec is not None else "error",
                           progress_root=config.store.path / BATCH_PROGRESS, restart=restart,
                           on_progress=on_progress)
    finally:
        model.close()
        compute.close()

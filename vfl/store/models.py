"""A party's model store: the registry of its own model parts, with versions and stages.

A federated model has one id shared by every party, and each training run gives it one version
id shared by every party too (the job id), so "the guest's part v3 with the partner's part v3"
is checkable. Each party stores only its own part: the files under an artifact root (a local
directory, or an ``hdfs://`` URI mirrored from a local cache), the records in a SQL database
(SQLite by default, any SQLAlchemy URL in production).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from vfl.connectors.filesystems import filesystem_for
from vfl.connectors.uri import parse_uri, redact_uri
from vfl.errors import ConfigError, DataError, UnknownModelError
from vfl.names import check_name
from vfl.store.files import inside, private_dir, private_sqlite, remove_tree, seal

if TYPE_CHECKING:
    from vfl.parties.config import PartyConfig

_metadata = MetaData()
_models = Table(
    "vfl_models",
    _metadata,
    Column("model_id", String(128), primary_key=True),
    Column("version", String(128), primary_key=True),
    Column("party", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("peers", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("promoted_at", DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    version: str
    party: str
    role: str
    kind: str
    stage: str
    peers: list[str]
    metrics: dict[str, Any]
    digest: str
    created_at: datetime
    promoted_at: datetime | None

    def summary(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id, "version": self.version, "role": self.role,
            "kind": self.kind, "stage": self.stage, "peers": self.peers,
            "created_at": self.created_at.isoformat(),
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
            "auc": self.metrics.get("auc"), "ks": self.metrics.get("ks"),
        }


class ModelStore:
    """Save, list, promote, roll back and load this party's model parts."""

    @classmethod
    def of(cls, config: PartyConfig) -> ModelStore:
        """The store a party config describes (``store: {path, url, artifacts}``)."""
        return cls(config.name, config.store.path, url=config.store.url,
                   artifacts=config.store.artifacts)

    def __init__(self, party: str, root: Path, url: str | None = None,
                 artifacts: str | None = None) -> None:
        self.party = party
        self.root = private_dir(Path(root))
        self.url = url or private_sqlite(f"sqlite:///{self.root / 'models.db'}")
        self.artifacts = artifacts or ""  # "": the files stay in this store's own cache
        try:
            self._engine = create_engine(self.url)
            _metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            raise ConfigError(f"model store {redact_uri(self.url)} unusable: {type(exc).__name__}") from None

    # --- writing ---------------------------------------------------------------------------
    def save(
        self, model_id: str, version: str, *, role: str, kind: str,
        write: Callable[[Path], None], peers: list[str], metrics: dict[str, Any] | None = None,
    ) -> ModelRecord:
        """Store a part: `write(directory)` puts its files in a fresh directory."""
        check_name(model_id, "model_id")
        check_name(version, "version")
        if self._find(model_id, version) is not None:
            raise DataError(f"model '{model_id}' version '{version}' already exists on '{self.party}'")
        remove_tree(self.root, "cache", model_id, version)  # a partial earlier attempt
        local = private_dir(self._cache_dir(model_id, version))
        write(local)
        seal(local)
        digest = _digest(local)
        self._upload(local, model_id, version)
        now = datetime.now(timezone.utc)
        with self._engine.begin() as conn:
            conn.execute(insert(_models).values(
                model_id=model_id, version=version, party=self.party, role=role, kind=kind,
                stage="staged", peers=sorted(peers), metrics=metrics or {}, digest=digest,
                created_at=now, promoted_at=None,
            ))
        return self.get(model_id, version)

    def promote(self, model_id: str, version: str) -> ModelRecord:
        """Make `version` the one served; the previous production version is archived."""
        check_name(version, "version")
        self.get(model_id, version)
        now = datetime.now(timezone.utc)
        with self._engine.begin() as conn:
            conn.execute(update(_models).where(
                (_models.c.model_id == model_id) & (_models.c.stage == "production")
            ).values(stage="archived"))
            conn.execute(update(_models).where(
                (_models.c.model_id == model_id) & (_models.c.version == version)
            ).values(stage="production", promoted_at=now))
        return self.get(model_id, version)

    def previous(self, model_id: str) -> ModelRecord | None:
        """The version a rollback serves: the latest earlier production one (None if none)."""
        current = self._find(model_id, None)
        earlier = [r for r in self.list(model_id) if r.stage == "archived" and r.promoted_at is not None
                   and (current is None or r.version != current.version)]
        return max(earlier, key=lambda r: r.promoted_at or r.created_at) if earlier else None

    def rollback(self, model_id: str, version: str | None = None) -> ModelRecord:
        """Serve again the version that was in production before the current one (or
        `version`, when every party of a federated rollback moves to the guest's previous
        one); the current version goes back to staged."""
        current = self.get(model_id)
        previous = self.previous(model_id) if version is None else self.get(model_id, version)
        if previous is None:
            raise DataError(f"model '{model_id}' has no earlier production version to roll back to")
        if previous.version == current.version:
            raise DataError(f"model '{model_id}' version '{version}' is already in production")
        with self._engine.begin() as conn:
            conn.execute(update(_models).where(
                (_models.c.model_id == model_id) & (_models.c.version == current.version)
            ).values(stage="staged"))
        return self.promote(model_id, previous.version)

    def delete(self, model_id: str, version: str) -> None:
        check_name(version, "version")
        record = self.get(model_id, version)
        if record.stage == "production":
            raise DataError(f"model '{model_id}' version '{version}' is in production; "
                            "promote another version or roll back first")
        with self._engine.begin() as conn:
            conn.execute(delete(_models).where(
                (_models.c.model_id == model_id) & (_models.c.version == version)))
        remove_tree(self.root, "cache", model_id, version)

    # --- reading ---------------------------------------------------------------------------
    def served(self) -> list[str]:
        """The ids of the models with a production version here."""
        query = select(_models.c.model_id).where(_models.c.stage == "production").order_by(_models.c.model_id)
        with self._engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def list(self, model_id: str | None = None) -> list[ModelRecord]:
        query = select(_models).order_by(_models.c.model_id, _models.c.created_at)
        if model_id is not None:
            check_name(model_id, "model_id")
            query = query.where(_models.c.model_id == model_id)
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]

    def get(self, model_id: str, version: str | None = None) -> ModelRecord:
        """A version, or the production one when `version` is None (else UnknownModelError)."""
        check_name(model_id, "model_id")
        if version is not None:
            check_name(version, "version")
        record = self._find(model_id, version)
        if record is None:
            known = [r.version for r in self.list(model_id)]
            if version:
                raise UnknownModelError(f"party '{self.party}' has no model '{model_id}' version "
                                        f"'{version}' (versions here: {known or 'none'})")
            served = self.served()
            what = (f"no production version of model '{model_id}' (versions here: {known}; promote one)"
                    if known else f"no model '{model_id}'")
            raise UnknownModelError(f"party '{self.party}' has {what}; models it serves: "
                                    f"{served or 'none yet'}")
        return record

    def open(self, record: ModelRecord) -> Path:
        """The local directory of a part's files, checked against the digest saved with it."""
        local = self._cache_dir(record.model_id, record.version)
        if not local.exists():
            self._download(local, record.model_id, record.version)
        if _digest(local) != record.digest:
            raise DataError(f"model '{record.model_id}' version '{record.version}' on "
                            f"'{self.party}': files do not match their digest (tampered or partial)")
        return local

    def _find(self, model_id: str, version: str | None) -> ModelRecord | None:
        query = select(_models).where(_models.c.model_id == model_id)
        query = query.where(_models.c.version == version if version else _models.c.stage == "production")
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(row)

    # --- artifact files ----------------------------------------------------------------------
    def _cache_dir(self, model_id: str, version: str) -> Path:
        return inside(self.root, "cache", model_id, version)

    def _remote(self, model_id: str, version: str) -> tuple[Any, str] | None:
        """Where a part's files are mirrored: a shared folder (the replicas of a party on one
        file system) or HDFS; None when the store keeps them in its own cache only."""
        if not self.artifacts:
            return None
        base, _, query = self.artifacts.partition("?")  # options such as ?user= stay at the end
        loc = parse_uri(f"{base.rstrip('/')}/{model_id}/{version}" + (f"?{query}" if query else ""))
        return filesystem_for(loc), loc.path

    def _upload(self, local: Path, model_id: str, version: str) -> None:
        remote = self._remote(model_id, version)
        if remote is None:
            return
        fs, base = remote
        fs.makedirs(base)
        for path in sorted(local.rglob("*")):
            if path.is_file():
                target = fs.join(base, str(path.relative_to(local)))
                with fs.open_write(target) as out:
                    out.write(path.read_bytes())

    def _download(self, local: Path, model_id: str, version: str) -> None:
        remote = self._remote(model_id, version)
        if remote is None:
            raise DataError(f"model '{model_id}' version '{version}': files missing under {local}")
        fs, base = remote

        def fetch(rel: str) -> None:
            src = fs.join(base, rel) if rel else base
            for name in fs.listdir(src):
                sub = f"{rel}/{name}" if rel else name
                if fs.isdir(fs.join(base, sub)):
                    fetch(sub)
                else:
                    target = inside(local, *sub.split("/"))
                    private_dir(target.parent)
                    with fs.open_read(fs.join(base, sub)) as f:
                        target.write_bytes(f.read())

        fetch("")
        seal(local)


def _record(row: Any) -> ModelRecord:
    def aware(value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value

    created = aware(row["created_at"])
    assert created is not None
    return ModelRecord(
        model_id=row["model_id"], version=row["version"], party=row["party"], role=row["role"],
        kind=row["kind"], stage=row["stage"], peers=list(row["peers"]), metrics=dict(row["metrics"]),
        digest=row["digest"], created_at=created, promoted_at=aware(row["promoted_at"]),
    )


def _digest(directory: Path) -> str:
    """SHA-256 over every file's relative path and bytes: detects tampering and partial copies."""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(directory)).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()

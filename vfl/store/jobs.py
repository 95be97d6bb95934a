"""Job records in the party's own store (SQLAlchemy; a SQLite file in the store folder by default).

One row per job this party took part in: who asked, which protocol and role, the state and its
timestamps, and the error. Rows of jobs that were queued or running when the service stopped
are marked failed when it starts again, so no job stays "running" forever.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, Text, create_engine, select, update
from sqlalchemy.engine import Engine

from vfl.names import check_name
from vfl.store.files import private_dir, private_sqlite

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
FINAL = (SUCCEEDED, FAILED, CANCELLED)
INTERRUPTED = "interrupted by restart of the party service"

_meta = MetaData()
jobs_table = Table(
    "vfl_jobs",
    _meta,
    Column("job_id", String(128), primary_key=True),
    Column("protocol", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("peer", String(128), nullable=False),
    Column("parties", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("error", Text),
)


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    protocol: str
    role: str
    peer: str
    parties: dict[str, str]
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None


class JobStore:
    """Thread-safe access to the job table (one service, many job threads)."""

    def __init__(self, url: str) -> None:
        args: dict[str, Any] = {"check_same_thread": False} if url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(url, connect_args=args)
        _meta.create_all(self.engine)
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, path: Path, url: str | None = None) -> JobStore:
        """The configured URL, or ``<store path>/jobs.sqlite`` (folder 0700, file 0600)."""
        if url:
            return cls(url)
        root = private_dir(Path(path)).resolve()
        return cls(private_sqlite(f"sqlite:///{root / 'jobs.sqlite'}"))

    def create(self, job_id: str, protocol: str, role: str, peer: str, parties: dict[str, str]) -> None:
        check_name(job_id, "job_id")
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                jobs_table.insert().values(
                    job_id=job_id, protocol=protocol, role=role, peer=peer,
                    parties=json.dumps(parties, sort_keys=True), state=QUEUED, created_at=time.time(),
                )
            )

    def restart(self, job_id: str) -> None:
        """A failed or cancelled job runs again under its id (its checkpoints resume it)."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(jobs_table).where(jobs_table.c.job_id == job_id).values(
                state=QUEUED, error=None, started_at=None, finished_at=None))

    def set_state(self, job_id: str, state: str, error: str | None = None) -> None:
        values: dict[str, Any] = {"state": state}
        if state == RUNNING:
            values["started_at"] = time.time()
        if state in FINAL:
            values["finished_at"] = time.time()
            values["error"] = error
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(jobs_table).where(jobs_table.c.job_id == job_id).values(**values))

    def get(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs_table).where(jobs_table.c.job_id == job_id)).first()
        return None if row is None else _record(row._mapping)

    def recent(self, limit: int = 100) -> list[JobRecord]:
        query = select(jobs_table).order_by(jobs_table.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_record(row._mapping) for row in conn.execute(query)]

    def mark_interrupted(self) -> list[str]:
        """Fail every job left queued or running by a previous run; returns their ids."""
        with self._lock, self.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(
                select(jobs_table.c.job_id).where(jobs_table.c.state.in_(ACTIVE))
            )]
            if ids:
                conn.execute(
                    update(jobs_table).where(jobs_table.c.job_id.in_(ids)).values(
                        state=FAILED, error=INTERRUPTED, finished_at=time.time()
                    )
                )
        return ids

    def close(self) -> None:
        self.engine.dispose()


def _record(row: Any) -> JobRecord:
    return JobRecord(
        job_id=row["job_id"], protocol=row["protocol"], role=row["role"], peer=row["peer"],
        parties=json.loads(row["parties"]), state=row["state"], created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], error=row["error"],
    )

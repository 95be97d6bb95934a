"""Job records in the party's own store (SQLAlchemy; a SQLite file in the store folder by default).

One row per job this party took part in: who asked, which protocol and role, the state and its
timestamps, and the error. Rows of jobs that were queued or running when the service stopped
are marked failed when it starts again, so no job stays "running" forever.

Replicas of a party may share one job store (``store.url``). Each job is *claimed* by the one
replica that runs it: a row of ``vfl_job_claims`` whose key is the job id, written in the same
transaction as the job's row, so a second replica asked to run the same job fails to insert it
and refuses (`JobClaimedError`). A replica that starts again marks failed only the jobs it had
claimed itself.
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
from sqlalchemy.exc import IntegrityError

from vfl.errors import ProtocolError
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
claims_table = Table(
    "vfl_job_claims",
    _meta,
    Column("job_id", String(128), primary_key=True),
    Column("replica", String(255), nullable=False),  # the address of the replica running it
    Column("claimed_at", Float, nullable=False),
)


class JobClaimedError(ProtocolError):
    """Another replica of this party already holds the job."""


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

    def __init__(self, url: str, replica: str = "") -> None:
        args: dict[str, Any] = {"check_same_thread": False} if url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(url, connect_args=args, pool_pre_ping=True)
        _meta.create_all(self.engine)
        self.replica = replica
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, path: Path, url: str | None = None, replica: str = "") -> JobStore:
        """The configured URL, or ``<store path>/jobs.sqlite`` (folder 0700, file 0600);
        `replica` names this replica in the claims of the jobs it runs (its address)."""
        if url:
            return cls(url, replica)
        root = private_dir(Path(path)).resolve()
        return cls(private_sqlite(f"sqlite:///{root / 'jobs.sqlite'}"), replica)

    def create(self, job_id: str, protocol: str, role: str, peer: str, parties: dict[str, str]) -> None:
        """Record a new job, claimed by this replica.

        Raises
        ------
        JobClaimedError
            The job is already recorded (by this replica or another of the same store).
        """
        check_name(job_id, "job_id")
        try:
            with self._lock, self.engine.begin() as conn:
                conn.execute(
                    jobs_table.insert().values(
                        job_id=job_id, protocol=protocol, role=role, peer=peer,
                        parties=json.dumps(parties, sort_keys=True), state=QUEUED, created_at=time.time(),
                    )
                )
                conn.execute(claims_table.insert().values(job_id=job_id, replica=self.replica,
                                                          claimed_at=time.time()))
        except IntegrityError:
            raise JobClaimedError(f"job id '{job_id}' is already claimed by "
                                  f"{self.claimed_by(job_id) or 'another replica'}") from None

    def claimed_by(self, job_id: str) -> str | None:
        """The replica that runs (or ran) `job_id`, if it was claimed."""
        with self.engine.connect() as conn:
            return conn.execute(select(claims_table.c.replica).where(claims_table.c.job_id == job_id)).scalar()

    def restart(self, job_id: str) -> None:
        """A failed or cancelled job runs again under its id (its checkpoints resume it), on
        this replica: the claim moves here only if the job is still final (compare-and-set)."""
        with self._lock, self.engine.begin() as conn:
            moved = conn.execute(update(jobs_table).where(
                jobs_table.c.job_id == job_id, jobs_table.c.state.in_(FINAL)).values(
                state=QUEUED, error=None, started_at=None, finished_at=None))
            if moved.rowcount != 1:
                raise JobClaimedError(f"job id '{job_id}' is already running again on "
                                      f"{self.claimed_by(job_id) or 'another replica'}")
            conn.execute(update(claims_table).where(claims_table.c.job_id == job_id).values(
                replica=self.replica, claimed_at=time.time()))

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
        """Fail every job left queued or running by a previous run of this replica (or not
        claimed by any: a store written before claims); returns their ids."""
        mine = select(claims_table.c.job_id).where(claims_table.c.replica == self.replica)
        claimed = select(claims_table.c.job_id)
        with self._lock, self.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(
                select(jobs_table.c.job_id).where(jobs_table.c.state.in_(ACTIVE)).where(
                    jobs_table.c.job_id.in_(mine) | jobs_table.c.job_id.not_in(claimed))
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

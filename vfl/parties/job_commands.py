"""`vfl jobs`: what this party's service has run and is running; cancel a job.

`list` and `show` read the party's own job store (works with the service stopped); `cancel`
asks the running service, which tells every other party of the job. Output is a table (or
``field  value`` lines) by default and JSON with ``--json``; timestamps are ISO-8601 UTC.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from vfl.errors import ConfigError
from vfl.names import name_argument

# Config, job store and grpc are imported by the commands that use them, not at `vfl` start-up.


def add_commands(subparsers: Any) -> None:
    jobs = subparsers.add_parser("jobs", help="this party's jobs: list, show, cancel")
    jobs.add_argument("--config", type=Path, required=True, help="the party's YAML")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    ls = actions.add_parser("list", help="the most recent jobs, newest first")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=cmd_list)
    show = actions.add_parser("show", help="one job's record (and live progress if running)")
    show.add_argument("job_id", type=name_argument("job_id"))
    show.set_defaults(func=cmd_show)
    cancel = actions.add_parser("cancel", help="cancel a running job on every party")
    cancel.add_argument("job_id", type=name_argument("job_id"))
    cancel.set_defaults(func=cmd_cancel)
    for action in (ls, show, cancel):
        action.add_argument("--json", action="store_true", help="JSON instead of a table")


LIST_COLUMNS = ["job_id", "protocol", "role", "peer", "state", "created_at", "finished_at", "error"]


def _shown(record: Any) -> dict[str, Any]:
    """A job record for people and programs: timestamps as ISO-8601."""
    from vfl.cli_output import iso

    shown: dict[str, Any] = dataclasses.asdict(record)
    for key in ("created_at", "started_at", "finished_at"):
        shown[key] = iso(shown[key])
    return shown


def cmd_list(args: argparse.Namespace) -> int:
    from vfl.cli_output import print_records
    from vfl.parties.config import load_party_config
    from vfl.store.jobs import JobStore

    config = load_party_config(args.config, datasets=False)
    records = JobStore.for_store(config.store.path, config.store.url).recent(args.limit)
    print_records([_shown(r) for r in records], LIST_COLUMNS, args.json)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from vfl.cli_output import print_record
    from vfl.parties.config import load_party_config
    from vfl.parties.federation import Federation
    from vfl.store.jobs import ACTIVE, JobStore

    config = load_party_config(args.config, datasets=False)
    record = JobStore.for_store(config.store.path, config.store.url).get(args.job_id)
    if record is None:
        raise ConfigError(f"no job '{args.job_id}' in the job store of {args.config}")
    shown = _shown(record)
    if record.state in ACTIVE:  # the live progress is the service's
        fed = Federation(config)
        try:
            shown["progress"] = fed.job_status(fed.name, args.job_id).progress
        finally:
            fed.close()
    print_record(shown, args.json)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from vfl.cli_output import print_record
    from vfl.parties.config import load_party_config
    from vfl.parties.federation import Federation

    fed = Federation(load_party_config(args.config, datasets=False))
    try:
        info = fed.cancel_job(fed.name, args.job_id)
    finally:
        fed.close()
    print_record({"job_id": info.job_id, "state": info.state, "error": info.error}, args.json)
    return 0


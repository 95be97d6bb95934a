"""How the `vfl` listing commands print records: an aligned table for people by default,
JSON for programs with ``--json``. Timestamps are ISO-8601 in both."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any


def iso(value: float | datetime | None) -> str | None:
    """An epoch time or a datetime as ISO-8601 UTC to the second (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def print_records(records: Sequence[Mapping[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """Several records: one JSON object per line, or a table of `columns` (header + rows)."""
    if as_json:
        for record in records:
            print(json.dumps(record))
        return
    rows = [[c.upper() for c in columns], *([_cell(r.get(c)) for c in columns] for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def print_record(record: Mapping[str, Any], as_json: bool) -> None:
    """One record: indented JSON, or one ``field  value`` line per field."""
    if as_json:
        print(json.dumps(record, indent=2))
        return
    width = max((len(k) for k in record), default=0)
    for key, value in record.items():
        print(f"{key.ljust(width)}  {_cell(value)}")

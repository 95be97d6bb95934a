"""A terminal progress bar for long runs: pass it as the `on_progress` of a context."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from vfl.parties.context import ProgressEvent


def progress_bar(stream: TextIO | None = None, width: int = 30,
                 every: float = 0.5) -> Callable[[ProgressEvent], None]:
    """One line per party and step, redrawn at most every `every` seconds and at 100 %."""
    out = stream or sys.stderr
    last: dict[tuple[str, str], float] = {}
    lock = threading.Lock()

    def show(event: ProgressEvent) -> None:
        key = (event.party, event.step)
        now = time.monotonic()
        finished = event.done >= event.total
        with lock:
            if not finished and now - last.get(key, 0.0) < every:
                return
            last[key] = now
            frac = event.done / event.total if event.total else 1.0
            bar = "#" * int(frac * width)
            unit = event.info.get("unit", "")
            out.write(f"\r{event.party} {event.step} [{bar:<{width}}] {frac:6.1%} "
                      f"{event.done}/{event.total} {unit}" + ("\n" if finished else ""))
            out.flush()

    return show

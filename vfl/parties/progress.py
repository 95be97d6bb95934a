"""Progress of a job's long steps for whoever watches: PSI points, training batches, scored rows.

One display for every caller (`vfl run`, `vfl demo`, `vfl score`, and `run_simulated` /
`run_federated` from Python or a notebook), built on tqdm:

- on a terminal or in a notebook: a live bar per party and step, with rate and ETA;
- otherwise (a log file, CI): plain lines, one per party and step at its start, then at most
  every `interval` seconds, and at its end, e.g.
  ``[bank train epoch 2/5] 7/10 batches 70% 00:21<00:09  3.00s/batches``.

Roles run in threads and report concurrently: one lock serializes the display. Log lines that
repeat a progress event are logged with ``extra=REPEATS_PROGRESS``; `HideRepeatedProgress` drops
them from a log handler while a display shows the same.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from vfl.parties.context import ProgressEvent

if TYPE_CHECKING:
    from tqdm import tqdm

REPEATS_PROGRESS = {"vfl_progress": True}
"""``extra=`` of a log line that says what a progress event already shows."""

PLAIN_FORMAT = "{desc} {n_fmt}/{total_fmt} {unit} {percentage:.0f}% {elapsed}<{remaining} {rate_fmt}{postfix}"
UNKNOWN_TOTAL_FORMAT = "{desc} {n_fmt} {unit} {elapsed} {rate_fmt}{postfix}"
SHOWN_APART = ("unit", "epoch", "epochs")  # in the bar's label, not among the figures after it


def quiet(event: ProgressEvent) -> None:
    """An `on_progress` that shows nothing."""


class HideRepeatedProgress(logging.Filter):
    """Drops log records marked ``extra=REPEATS_PROGRESS`` (the display shows them already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "vfl_progress", False)


def _label(event: ProgressEvent) -> str:
    label = f"{event.party} {event.step}"
    if "epoch" in event.info and event.info.get("unit") != "epochs":  # batches of one epoch
        label += f" epoch {event.info['epoch']}" + (f"/{event.info['epochs']}" if "epochs" in event.info else "")
    return label


def _figures(event: ProgressEvent) -> str:
    shown = {k: v for k, v in event.info.items() if k not in SHOWN_APART and isinstance(v, (int, float, str))}
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


class _Bar:
    """One party's step: a live tqdm bar, or the state behind its plain lines."""

    def __init__(self, event: ProgressEvent, stream: TextIO, live: bool, interval: float) -> None:
        self.label, self.stream, self.interval = _label(event), stream, interval
        self.unit = str(event.info.get("unit", "steps"))
        self.total = event.total if event.total > 0 else None
        self.done, self.figures = event.done, ""
        self.initial = event.done  # done before this display saw the step: not in the rate
        self.started, self.shown_at = time.monotonic(), -float("inf")
        self.tqdm: tqdm[Any] | None = None
        if live:
            from tqdm import tqdm

            self.tqdm = tqdm(total=self.total, initial=self.initial, desc=self.label, unit=f" {self.unit}",
                             file=stream, dynamic_ncols=True, mininterval=0.2, leave=True)

    def update(self, event: ProgressEvent) -> None:
        self.done, self.figures = event.done, _figures(event)
        if self.tqdm is not None:
            self.tqdm.set_postfix_str(self.figures, refresh=False)
            self.tqdm.update(event.done - self.tqdm.n)
        elif time.monotonic() - self.shown_at >= self.interval or self.finished:
            self._line()

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def _line(self) -> None:
        from tqdm import tqdm

        self.shown_at = time.monotonic()
        text = tqdm.format_meter(
            self.done, self.total, self.shown_at - self.started, prefix=f"[{self.label}]", initial=self.initial,
            unit=self.unit, postfix=self.figures or None,
            bar_format=PLAIN_FORMAT if self.total else UNKNOWN_TOTAL_FORMAT)
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
        elif not self.finished:
            self._line()  # where the step stopped (early stopping, unknown total, failure)


class ProgressDisplay:
    """An `on_progress` callback that shows every party's steps as they go.

    Parameters
    ----------
    stream : text stream, optional
        Where to write; default the current ``sys.stderr``.
    live : bool, optional
        Live bars (True) or plain lines (False); default: live on a terminal or in a notebook.
    interval : float
        Seconds between two plain lines of the same step (its start and end always show).
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
                 interval: float = 10.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = _is_interactive(self.stream) if live is None else live
        self.interval = interval
        self._bars: dict[tuple[str, str, str], _Bar] = {}
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        key = (event.party, event.step, str(event.info.get("unit", "")))
        with self._lock:
            bar = self._bars.get(key)
            if bar is not None and (bar.label != _label(event) or event.done < bar.done):
                bar.close()  # a new epoch, or the step started over
                bar = None
            if bar is None:
                bar = self._bars[key] = _Bar(event, self.stream, self.live, self.interval)
            bar.update(event)
            if bar.finished:
                bar.close()
                del self._bars[key]

    def close(self) -> None:
        """End every bar still open (a step stopped early or has no known total)."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProgressStatus:
    """A running job's progress as one line of text, for its status on the party service.

    The latest event of every step and unit, e.g. ``psi/partner: 48000/48000 points; train:
    1/5 epochs; train: 7/24 batches (epoch 2/5)``; `parse` turns it back into events for
    whoever submitted the job.
    """

    ENTRY = re.compile(r"^(?P<step>.+?): (?P<done>\d+)/(?P<total>\d+)(?: (?P<unit>\w+))?"
                       r"(?: \(epoch (?P<epoch>\d+)/(?P<epochs>\d+)\))?$")

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def update(self, event: ProgressEvent) -> str:
        """Record `event`; return the whole status line."""
        unit = str(event.info.get("unit", ""))
        text = f"{event.step}: {event.done}/{event.total}" + (f" {unit}" if unit else "")
        if "epochs" in event.info and unit != "epochs":
            text += f" (epoch {event.info['epoch']}/{event.info['epochs']})"
        with self._lock:
            self._latest[(event.step, unit)] = text
            return "; ".join(self._latest.values())

    @classmethod
    def parse(cls, party: str, job_id: str, status: str) -> list[ProgressEvent]:
        """The events a status line holds (entries it cannot read are skipped)."""
        events = []
        for entry in status.split("; "):
            found = cls.ENTRY.match(entry)
            if found is None:
                continue
            info: dict[str, Any] = {"unit": found["unit"]} if found["unit"] else {}
            if found["epoch"]:
                info.update(epoch=int(found["epoch"]), epochs=int(found["epochs"]))
            events.append(ProgressEvent(party, job_id, found["step"], int(found["done"]),
                                        int(found["total"]), info))
        return events


def console_display() -> ProgressDisplay:
    """A display on stderr for a command; the console's log handlers stop repeating it."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, HideRepeatedProgress) for f in handler.filters):
            handler.addFilter(HideRepeatedProgress())
    return ProgressDisplay()


def _is_interactive(stream: TextIO) -> bool:
    """A terminal, or a notebook (whose output renders a bar redrawn with carriage returns)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules

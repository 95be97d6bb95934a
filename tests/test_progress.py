"""The progress display: live bars on a terminal, plain lines otherwise, safe under threads,
shown by default from Python and by `vfl run` without the log lines it repeats."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from tests.parties import service_kit as kit
from vfl import demo
from vfl.config import load_job_config
from vfl.connectors import write_table
from vfl.parties import simulate
from vfl.parties.context import ProgressEvent
from vfl.parties.progress import REPEATS_PROGRESS, ProgressDisplay, ProgressStatus, console_display
from vfl.runner import run_simulated

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\[(\S+) (\S+)(?: epoch (\d+)/(\d+))?\] (\d+)/(\d+) (\w+) (\d+)% \S+<\S+ .*$")


def _event(done: int, total: int, step: str = "train", party: str = "bank", **info: object) -> ProgressEvent:
    return ProgressEvent(party, "j", step, done, total, dict(info))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class SlowStream(io.StringIO):
    """Writes a character at a time, yielding between them: unserialized writers interleave."""

    def write(self, text: str) -> int:
        for ch in text:
            super().write(ch)
            time.sleep(0)
        return len(text)


# --- the display ------------------------------------------------------------------------------


def test_plain_lines_when_output_is_not_a_terminal():
    out = io.StringIO()
    show = ProgressDisplay(out, interval=3600)
    assert not show.live
    for epoch in (1, 2):
        for b in range(1, 5):
            show(_event(b, 4, unit="batches", epoch=epoch, epochs=2))
    show(_event(1, 2, unit="epochs", epoch=1, loss=0.51234))
    show.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # throttled: a step's first line and its last, nothing between
    assert [LINE.match(x).group(3, 5, 6, 7) for x in lines[:4]] == [  # type: ignore[union-attr]
        ("1", "1", "4", "batches"), ("1", "4", "4", "batches"),
        ("2", "1", "4", "batches"), ("2", "4", "4", "batches")]
    assert lines[4].startswith("[bank train] 1/2 epochs 50% ") and lines[4].endswith("loss=0.5123")
    assert len(lines) == 6  # closed: the epochs bar says where it stopped
    assert lines[5].startswith("[bank train] 1/2 epochs")


def test_live_bars_with_eta_on_a_terminal():
    out = Terminal()
    with ProgressDisplay(out) as show:
        assert show.live
        for done in range(0, 1001, 100):
            show(_event(done, 1000, step="psi", unit="points"))
    text = out.getvalue()
    assert "\r" in text and "bank psi" in text and "1000/1000" in text and "points" in text
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", text)  # elapsed < remaining: the ETA


def test_live_bars_in_a_notebook(monkeypatch):
    """A notebook's stderr is no terminal, but renders a bar redrawn with carriage returns."""
    assert not ProgressDisplay(io.StringIO()).live
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    out = io.StringIO()
    with ProgressDisplay(out) as show:
        assert show.live
        show(_event(5, 5, step="psi", unit="points"))
    assert "bank psi: 100%|" in out.getvalue()


def test_a_step_without_a_known_total_shows_counts_and_its_last_line_on_close():
    out = io.StringIO()
    with ProgressDisplay(out, interval=3600) as show:
        for rows in (500, 1000, 1200):
            show(_event(rows, 0, step="score", unit="rows", chunks=rows // 500))
    lines = out.getvalue().splitlines()
    assert [x.split(" rows")[0] for x in lines] == ["[bank score] 500", "[bank score] 1200"]
    assert lines[-1].endswith("chunks=2")


def test_concurrent_roles_never_interleave_a_line():
    out = SlowStream()
    show = ProgressDisplay(out, interval=0.0)
    parties = ["bank", "p1", "p2", "p3"]

    def role(ctx):
        for _ in ctx.child("train").each_batch(list(range(50)), epoch=0, epochs=1):
            pass
        for done in range(1, 31):
            ctx.child("psi").progress(done, 30, unit="points")

    simulate({p: (role, {}) for p in parties}, {p: "guest" if p == "bank" else "host" for p in parties},
             on_progress=show)
    show.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == len(parties) * (1 + 50 + 30)  # each epoch also reports its start
    assert all(LINE.match(x) for x in lines), [x for x in lines if not LINE.match(x)][:3]
    for party in parties:
        assert f"[{party} train epoch 1/1] 50/50 batches 100% " in out.getvalue()
        assert f"[{party} psi] 30/30 points 100% " in out.getvalue()


def test_concurrent_live_bars_all_finish():
    out = Terminal()
    show = ProgressDisplay(out)
    parties = ["bank", "p1", "p2"]

    def role(ctx):
        for done in range(1, 201):
            ctx.child("psi").progress(done, 200, unit="points")

    simulate({p: (role, {}) for p in parties}, {p: "guest" if p == "bank" else "host" for p in parties},
             on_progress=show)
    show.close()
    for party in parties:
        assert re.search(rf"{party} psi: 100%\|[^\r\n]*200/200", out.getvalue()), party


def test_log_lines_that_repeat_progress_are_hidden_while_a_command_shows_it():
    root = logging.getLogger()
    out = io.StringIO()
    saved, root.handlers = root.handlers, [logging.StreamHandler(out)]  # as a command's console
    try:
        log = logging.getLogger("vfl.party")
        with console_display():
            log.warning("epoch 1/5 done", extra=REPEATS_PROGRESS)
            log.warning("PSI done: 10 common rows")
    finally:
        root.handlers = saved
    assert out.getvalue() == "PSI done: 10 common rows\n"


# --- a whole job ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job_yaml(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("progress")
    guest, host, guest_pre, host_pre, train = demo.breast_cancer_parties()
    write_table(guest, str(root / "bank.parquet"))
    write_table(host, str(root / "partner.parquet"))
    fed = kit.Federation(root, ["bank", "partner"])
    fed.write_config("bank", plugins=[], preprocessing={"c": guest_pre},
                     datasets={"c": {"uri": str(root / "bank.parquet"), "id_columns": ["id"], "label": "y"}})
    fed.write_config("partner", plugins=[], preprocessing={"c": host_pre},
                     datasets={"c": {"uri": str(root / "partner.parquet"), "id_columns": ["id"]}})
    path = root / "job.yaml"
    path.write_text(yaml.safe_dump({
        "guest": "bank", "hosts": ["partner"], "datasets": {"bank": "c", "partner": "c"},
        "parties": {"bank": "bank/party.yaml", "partner": "partner/party.yaml"},
        "steps": {"psi": {}, "split": {"test_size": 0.25, "seed": 1}, "preprocess": {},
                  "train": {"algorithm": "hetero_lr",
                            "params": {**train, "epochs": 2, "batch_size": 128, "key_bits": 2048}},
                  "score": {"source": "bank.parquet", "sink": "scores.parquet"}}}))
    return path


def test_run_simulated_shows_progress_by_default(job_yaml, capfd):
    job = load_job_config(job_yaml)
    job.steps.train.params["key_bits"] = 1024  # type: ignore[union-attr]
    run_simulated(job)
    err = capfd.readouterr().err
    for party in ("bank", "partner"):
        assert re.search(rf"^\[{party} psi/partner\] \d+/\d+ points 100% ", err, re.M), err[-2000:]
        assert re.search(rf"^\[{party} train epoch 2/2\] (\d+)/\1 batches 100% ", err, re.M)
        assert re.search(rf"^\[{party} train\] 2/2 epochs 100% ", err, re.M)
    assert re.search(r"^\[bank score\] 569/569 rows 100% ", err, re.M)


def test_vfl_run_prints_plain_progress_without_repeated_log_lines_and_a_fast_key_warning(job_yaml):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "vfl.cli", "run", str(job_yaml), "--key-bits", "1024"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=job_yaml.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--key-bits 1024: Paillier keys below 2048 bits are for trying the walkthrough only, " \
           "NOT for production" in done.stderr
    assert re.search(r"^\[bank train epoch 1/2\] (\d+)/\1 batches 100% ", done.stderr, re.M)
    assert "\r" not in done.stderr
    assert "hetero LR [he] epoch" not in done.stderr and "hetero LR host [he] epoch" not in done.stderr
    assert "INFO" in done.stderr  # the other log lines stay


def test_a_service_status_line_carries_every_steps_latest_event_back_to_the_submitter():
    status = ProgressStatus()
    events = [_event(48, 48, step="psi/partner", unit="points"),
              _event(7, 24, unit="batches", epoch=2, epochs=5),
              _event(1, 5, unit="epochs", epoch=1, loss=0.4),
              _event(8, 24, unit="batches", epoch=2, epochs=5),
              _event(3, 10, step="custom")]
    line = ""
    for event in events:
        line = status.update(event)
    assert line == ("psi/partner: 48/48 points; train: 8/24 batches (epoch 2/5); train: 1/5 epochs; "
                    "custom: 3/10")
    back = ProgressStatus.parse("bank", "j", line)
    assert [(e.step, e.done, e.total, e.info) for e in back] == [
        ("psi/partner", 48, 48, {"unit": "points"}),
        ("train", 8, 24, {"unit": "batches", "epoch": 2, "epochs": 5}),
        ("train", 1, 5, {"unit": "epochs"}),
        ("custom", 3, 10, {})]
    assert ProgressStatus.parse("bank", "j", "starting") == []

"""Batch scoring for real jobs: `vfl score` interrupted with SIGINT and rerun equals an
uninterrupted run; repeated ids follow the dataset's `duplicates:`; bad rows are named."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.parties.service_kit import REPO
from tests.serving.conftest import MODEL, N_ROWS, check_batch_scores
from vfl.cli import main
from vfl.connectors import read_table, write_table
from vfl.errors import DataError
from vfl.parties.config import load_party_config
from vfl.serving.batch import TIME_COLUMN, VERSION_COLUMN
from vfl.serving.online import BATCH_PROGRESS, batch_score

CHUNK = 20  # 400 rows: 20 chunks


def _score_cmd(trained, sink: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vfl.cli", "score", "--config", str(trained.config_path("bank")),
            "--model", MODEL, "--source", str(trained.root / "bank.csv"), "--sink", str(sink),
            "--chunk-rows", str(CHUNK), "--retry-delay", "0.2", *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def _chunks_saved(progress: Path, earlier: set[Path]) -> int:
    """Chunks the running `vfl score` has recorded in its manifest so far (not counting the
    progress folders in `earlier`: other sinks' runs that failed keep theirs for a rerun)."""
    for manifest in progress.glob("*/manifest.json"):  # written beside and renamed: always whole
        if manifest.parent not in earlier:
            return len(json.loads(manifest.read_text())["chunks"])
    return 0


def test_vfl_score_interrupted_by_sigint_resumes_and_equals_an_uninterrupted_run(trained):
    sink = trained.root / "resumed.parquet"
    progress = trained.fed.config("bank").store.path / BATCH_PROGRESS
    earlier = set(progress.glob("*"))
    proc = subprocess.Popen(_score_cmd(trained, sink), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), cwd=str(REPO))
    try:
        deadline = time.monotonic() + 120
        while _chunks_saved(progress, earlier) < 3:  # the manifest, not the throttled progress lines
            assert proc.poll() is None and time.monotonic() < deadline, "vfl score ended or stalled before chunk 3"
            time.sleep(0.005)
        # the partner stops answering: the run is certainly mid-chunk when Ctrl-C arrives
        trained.partner.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        trained.partner.proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("vfl score: interrupted; ") and "Rerun the same command" in last, err
    saved = int(last.split("; ")[1].split(" chunk")[0])
    assert 3 <= saved < N_ROWS // CHUNK
    assert not sink.exists()  # nothing half-written

    rerun = subprocess.run(_score_cmd(trained, sink), capture_output=True, text=True, env=_env(),
                           cwd=str(REPO), timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["resumed_chunks"] == saved and summary["chunks"] == N_ROWS // CHUNK
    assert summary["rows"] == N_ROWS
    assert set(progress.iterdir()) == earlier  # this sink's progress is gone once it is written

    whole = trained.root / "uninterrupted.parquet"
    once = subprocess.run(_score_cmd(trained, whole), capture_output=True, text=True, env=_env(),
                          cwd=str(REPO), timeout=120, check=False)
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout)["resumed_chunks"] == 0
    resumed, uninterrupted = read_table(str(sink)), read_table(str(whole))
    check_batch_scores(trained, resumed)
    assert (resumed[VERSION_COLUMN] == trained.job_id).all()
    assert pd.to_datetime(resumed[TIME_COLUMN], utc=True).notna().all()
    # exactly the same rows in the same order (the scoring time aside): no duplicates, no gaps
    pd.testing.assert_frame_equal(resumed.drop(columns=TIME_COLUMN),
                                  uninterrupted.drop(columns=TIME_COLUMN), check_exact=True)


def _with_repeat(trained, name: str) -> tuple[str, pd.DataFrame]:
    """The bank's first 60 rows with row 3 repeated as row 45 (chunk 3)."""
    rows = trained.guest.head(60).reset_index(drop=True)
    repeated = pd.concat([rows.iloc[:44], rows.iloc[[2]], rows.iloc[44:]], ignore_index=True)
    path = str(trained.root / name)
    write_table(repeated, path)
    return path, rows


def test_a_repeated_id_is_refused_with_duplicates_error(trained, capsys):
    source, rows = _with_repeat(trained, "repeated.csv")
    code = main(["score", "--config", str(trained.config_path("bank")), "--model", MODEL,
                 "--source", source, "--sink", str(trained.root / "never.parquet"), "--chunk-rows", str(CHUNK)])
    err = capsys.readouterr().err
    assert code == 2
    assert (f"batch source {source}, chunk 3, row 45: id {int(rows['id'][2])} already appeared at row 3 "
            "(duplicates: error)") in err
    assert not (trained.root / "never.parquet").exists()


def test_a_repeated_id_is_scored_once_with_duplicates_keep_first(trained, tmp_path, capsys):
    data = yaml.safe_load(trained.config_path("bank").read_text())
    data["datasets"]["credit"]["duplicates"] = "keep_first"
    data["store"]["path"] = str(tmp_path / "store")  # its own store: copy the bank's models
    config_path = tmp_path / "bank.yaml"
    config_path.write_text(yaml.safe_dump(data))
    shutil.copytree(trained.fed.config("bank").store.path, tmp_path / "store")
    source, rows = _with_repeat(trained, "repeated_keep.csv")
    sink = str(tmp_path / "kept.csv")

    code = main(["score", "--config", str(config_path), "--model", MODEL, "--source", source,
                 "--sink", sink, "--chunk-rows", str(CHUNK)])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["duplicates_dropped"] == 1 and summary["rows"] == 60
    assert "1 repeated id(s) in the source scored once (the dataset's duplicates: keep_first)" in err
    table = read_table(sink)
    assert table["id"].tolist() == rows["id"].tolist()  # each id once, in source order
    alone = batch_score(load_party_config(config_path), MODEL, str(trained.root / "bank.csv"),
                        str(tmp_path / "all.csv"), chunk_rows=CHUNK)
    assert alone.duplicates_dropped == 0
    expected = read_table(str(tmp_path / "all.csv")).head(60)
    pd.testing.assert_series_equal(table["score"], expected["score"])


def test_a_bad_value_names_the_source_chunk_and_row(trained):
    rows = trained.guest.head(60).copy()
    rows.loc[36, "segment"] = "Z"  # a category the bank's preprocessing never saw (row 37)
    source = str(trained.root / "bad_segment.csv")
    write_table(rows, source)
    with pytest.raises(DataError) as caught:
        batch_score(trained.fed.config("bank"), MODEL, source, str(trained.root / "bad.parquet"),
                    chunk_rows=CHUNK, restart=True)
    message = str(caught.value)
    assert message.startswith(f"batch source {source}, chunk 2, row 37 (id {int(rows['id'][36])}): ")
    assert "column 'segment'" in message and "'Z'" in message

    rows = trained.guest.head(30).astype({"id": "float64"})
    rows.loc[24, "id"] = float("nan")
    write_table(rows, source)
    with pytest.raises(DataError, match=r"chunk 2, row 25: empty id in column 'id'"):
        batch_score(trained.fed.config("bank"), MODEL, source, str(trained.root / "bad.parquet"),
                    chunk_rows=CHUNK)

"""The Makefile: `make install` says what it installs and shows pip's progress; `make
partner-db` / `make partner-db-stop` run scripts/partner-db.sh (tested in test_partner_db)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _dry_run(*args: str) -> list[str]:
    # --no-print-directory: under `make test` this make is nested and would print its directory
    done = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=REPO, capture_output=True,
                          text=True, check=True)
    return done.stdout.splitlines()


def test_make_install_announces_each_step_and_lets_pip_show_progress(tmp_path):
    lines = _dry_run("install", f"VENV={tmp_path / 'venv'}")
    installs = [line for line in lines if "/bin/pip install" in line]
    assert len(installs) == 3  # pip itself, torch, vfl with its extras
    for line in installs:
        assert "--progress-bar on" in line and not {"-q", "--quiet"} & set(line.split()), line
    announced = [line for line in lines if line.startswith('echo "== ')]
    assert [a.split("==")[1].split()[0:2] for a in announced] == [
        ["creating", "the"], ["installing", "torch"], ["installing", "vfl"]]


def test_make_partner_db_starts_and_stops_the_local_database():
    assert _dry_run("partner-db") == ["scripts/partner-db.sh start"]
    assert _dry_run("partner-db-stop") == ["scripts/partner-db.sh stop"]


def test_make_test_checks_the_import_layers():
    lines = _dry_run("test")
    assert any(line.endswith("/bin/lint-imports") for line in lines), lines

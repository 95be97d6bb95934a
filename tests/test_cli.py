"""The `vfl` command starts fast: heavy libraries are imported where they are used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vfl.cli import with_key_bits
from vfl.config import load_job_config
from vfl.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "matplotlib", "skops")
CPU_BOUND_S = 2.0  # CPU seconds, not wall time: other work on the machine cannot make it flaky


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO, check=True)


def _cpu_seconds(args: list[str]) -> float:
    """CPU time (user + system) a fresh interpreter spends running `args` to the end."""
    code = ("import resource, subprocess, sys\n"
            f"done = subprocess.run({args!r}, capture_output=True)\n"
            "assert done.returncode == 0, done.stderr.decode()[-2000:]\n"
            "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(use.ru_utime + use.ru_stime)\n")
    return float(_python(code).stdout)


def test_importing_the_cli_and_what_serve_and_run_load_leaves_heavy_libraries_out():
    code = ("import json, sys\n"
            "import vfl.cli\n"
            "vfl.cli.build_parser()\n"
            f"cli = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "import vfl.jobs, vfl.parties.service, vfl.runner, vfl.serving.grpc_api\n"
            f"serve = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "print(json.dumps({'cli': cli, 'serve': serve}))\n")
    loaded = json.loads(_python(code).stdout)
    assert loaded == {"cli": [], "serve": []}


@pytest.mark.parametrize("argv", [["--help"], ["models", "--config", "{config}", "list"]],
                         ids=["help", "models-list"])
def test_the_cli_answers_within_the_bound(argv, tmp_path):
    config = tmp_path / "party.yaml"
    config.write_text("name: bank\nlisten: 127.0.0.1:7999\ninsecure: true\nstore: {path: store}\n")
    args = [sys.executable, "-m", "vfl.cli", *(a.format(config=config) for a in argv)]
    assert _cpu_seconds(args) < CPU_BOUND_S


def test_importing_vfl_cli_takes_well_under_the_bound():
    code = ("import time\n"
            "t = time.process_time()\n"
            "import vfl.cli\n"
            "vfl.cli.build_parser()\n"
            "print(time.process_time() - t)\n")
    assert float(_python(code).stdout) < CPU_BOUND_S / 4


def test_key_bits_overrides_a_hetero_lr_job_and_nothing_else(tmp_path):
    job_file = tmp_path / "job.yaml"
    job_file.write_text("guest: bank\nhosts: [partner]\ndatasets: {bank: c, partner: c}\n"
                        "steps:\n  train: {algorithm: hetero_lr, params: {epochs: 2}}\n")
    job = load_job_config(job_file)
    fast = with_key_bits(job, 1024)
    assert fast.steps.train.params == {"epochs": 2, "key_bits": 1024}
    assert job.steps.train.params == {"epochs": 2}  # the loaded job is left as it was
    job_file.write_text(job_file.read_text().replace("hetero_lr, params: {epochs: 2}", "split_nn"))
    with pytest.raises(ConfigError, match="--key-bits: the job has no hetero_lr or secureboost train step"):
        with_key_bits(load_job_config(job_file), 1024)

"""`vfl health`: the container and Kubernetes health check asks the party's own running service,
with the party's own certificate, and fails when the service does not answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.parties import service_kit as kit
from vfl import __version__


def health(config) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfl.cli", "health", "--config", str(config)],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(kit.REPO)))


def test_health_answers_while_the_service_runs_and_fails_after_it_stops(tmp_path):
    fed = kit.Federation(tmp_path, ["bank", "partner"])
    config = fed.write_config("bank")
    served = kit.Served(config, fed.ports["bank"], tmp_path / "bank.log")
    try:
        done = health(config)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"party": "bank", "version": __version__,
                                           "running_jobs": 0, "insecure": False,
                                           "compute": kit.LOCAL_COMPUTE}
    finally:
        served.stop()
    done = health(config)
    assert done.returncode == 2 and done.stdout == ""
    assert "vfl health: error:" in done.stderr and "bank" in done.stderr

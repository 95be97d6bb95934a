"""The deployment tests (marker `deploy`): container image, compose, Kubernetes manifests.

`pytest -m deploy` runs them alone; they are part of the default run. What they measure (image
size, time per phase) is printed in the terminal summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.docker_kit import Daemon, DockerUnavailable
from tests.support.servers import require

REPORT: dict[str, str] = {}  # name -> value, printed after the run


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("deployment")
        for name, value in REPORT.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[Daemon]:
    """A Docker daemon (started here as root when none runs; stopped again only then)."""
    daemon = require(Daemon.obtain, DockerUnavailable, "run the container tests")
    try:
        yield daemon
    finally:
        daemon.stop()

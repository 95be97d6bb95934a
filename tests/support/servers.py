"""What the throwaway servers of the tests share: a free loopback port, what a test does when
one is not installed (a failure in CI, a skip elsewhere), and stopping the process a test
started.

    server = require(MariaDBServer().start, MariaDBUnavailable, "provide a real MariaDB server")
    ...
    stop_process(self.process, grace=30)
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick; a server binds it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing(reason: str, ci_needs: str) -> NoReturn:
    """End the test for want of a server or tool: a failure in CI (env ``CI`` set), a skip elsewhere.

    Parameters
    ----------
    reason : str
        What is missing and the Debian package that installs it (the skip's reason).
    ci_needs : str
        What CI must do about it, e.g. "provide a real MariaDB server" (the failure adds it).
    """
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must {ci_needs}")
    pytest.skip(reason)


def require(start: Callable[[], T], unavailable: type[Exception], ci_needs: str) -> T:
    """What `start()` returns (a started server); `unavailable` raised by it means `missing`.

    Parameters
    ----------
    start : callable
        Starts the server and returns it; raises `unavailable` (naming the Debian package)
        when the server is not installed. Any other error is the test's failure.
    unavailable : type of Exception
        The server's "not installed" error.
    ci_needs : str
        As in `missing`.
    """
    try:
        return start()
    except unavailable as exc:
        missing(str(exc), ci_needs)


def stop_process(process: subprocess.Popen[Any] | None, grace: float,
                 killed_timeout: float | None = None) -> None:
    """Stop `process` (one this test started): SIGTERM, then SIGKILL after `grace` seconds.

    Parameters
    ----------
    process : subprocess.Popen or None
        The process to stop; None or an exited process is left alone.
    grace : float
        Seconds it has to exit after SIGTERM.
    killed_timeout : float or None, default None
        Seconds to wait for it after SIGKILL (None: until it exits).
    """
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(killed_timeout)

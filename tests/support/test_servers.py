"""The servers' shared helpers: a server that is not installed fails the test in CI and skips it
elsewhere, naming what to install; `stop_process` stops what a test started, by force if it must."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.servers import missing, require, stop_process

REASON = "frobd not found; install the Debian package frobd"


class FrobUnavailable(RuntimeError):
    pass


def not_installed() -> str:
    raise FrobUnavailable(REASON)


def test_a_server_not_installed_fails_the_test_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require(not_installed, FrobUnavailable, "provide a real frob server")
    assert str(failed.value) == f"{REASON}: CI must provide a real frob server"


def test_a_server_not_installed_skips_the_test_elsewhere_naming_the_package(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require(not_installed, FrobUnavailable, "provide a real frob server")
    assert str(skipped.value) == REASON


def test_missing_without_a_server_error_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="^chromium not installed: CI must install it$"):
        missing("chromium not installed", "install it")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="^chromium not installed$"):
        missing("chromium not installed", "install it")


def test_a_started_server_is_returned_and_any_other_error_is_the_tests_failure(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert require(lambda: "started", FrobUnavailable, "provide a real frob server") == "started"

    def broken() -> str:
        raise RuntimeError("frobd exited with 1")

    with pytest.raises(RuntimeError, match="frobd exited with 1"):
        require(broken, FrobUnavailable, "provide a real frob server")


def _python(code: str) -> subprocess.Popen[bytes]:
    """A child that prints 'ready' once its signal handling is set up."""
    process = subprocess.Popen([sys.executable, "-c", code + "\nprint('ready', flush=True)\nimport time\n"
                                "time.sleep(60)"], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def test_stop_process_terminates_and_kills_what_ignores_sigterm():
    polite = _python("")
    stop_process(polite, grace=10)
    assert polite.returncode == -15  # SIGTERM

    stubborn = _python("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    stop_process(stubborn, grace=0.5, killed_timeout=10)
    assert stubborn.returncode == -9  # SIGKILL after the grace period
    for process in (polite, stubborn):
        assert process.stdout is not None
        process.stdout.close()

    stop_process(None, grace=1)  # nothing started: nothing to do
    stop_process(polite, grace=1)  # already stopped: left alone
    assert polite.returncode == -15

"""Docker for the container tests: a daemon, a Debian base image built locally, compose.

No image registry is reachable from the test machines, so nothing is pulled:

- `Daemon.obtain()` uses the daemon at ``DOCKER_HOST`` (or ``/var/run/docker.sock``) when one
  answers, and otherwise starts Debian's ``dockerd`` as root with its own data root under the
  cache folder (images survive between runs), its own socket and pid file, host networking
  only (no bridge, no iptables rules). Only a daemon these tests started is stopped again (also
  one left running by a killed session, known by its pid file).
- `base_image()` builds ``vfl-base:bookworm`` once with ``mmdebstrap`` (Debian's minbase with
  python3, python3-venv, ca-certificates) from the same Debian mirror apt uses here, and
  ``docker import``s it.

The cache folder is ``$VFL_TEST_CACHE`` or ``~/.cache/vfl-tests``; one test session at a time
holds its lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BASE_IMAGE = "vfl-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
OWN_RUN_DIR = Path(f"/tmp/vfl-tests-dockerd-{os.getuid()}")  # short: the sockets live here
OWN_HOST = f"unix://{OWN_RUN_DIR}/docker.sock"
OWN_PIDFILE = OWN_RUN_DIR / "dockerd.pid"
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


class DockerUnavailable(RuntimeError):
    """No daemon answers and none can be started here (the message says why)."""


def cache_dir() -> Path:
    path = Path(os.environ.get("VFL_TEST_CACHE") or Path.home() / ".cache" / "vfl-tests")
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 900, check: bool = True, input: str | None = None,  # noqa: A002
        ) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its command line and output tail."""
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          input=input)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


@dataclass
class Daemon:
    """A Docker daemon to talk to: `env` has its DOCKER_HOST; `stop()` ends only our own."""

    host: str
    pid: int | None = None  # set when these tests started the daemon
    process: subprocess.Popen[bytes] | None = None
    _lock: IO[str] | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, DOCKER_HOST=self.host)

    @property
    def ours(self) -> bool:
        return self.pid is not None

    def docker(self, *args: str, timeout: float = 900, check: bool = True,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], env=self.env, timeout=timeout, check=check, cwd=cwd)

    def inspect(self, kind: str, name: str) -> dict[str, Any] | None:
        done = self.docker(kind, "inspect", name, check=False, timeout=60)
        return json.loads(done.stdout)[0] if done.returncode == 0 else None

    @classmethod
    def obtain(cls) -> Daemon:
        lock = open(cache_dir() / "docker.lock", "w")  # noqa: SIM115 - held until stop()
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test session at a time drives the daemon
        try:
            for host in filter(None, [os.environ.get("DOCKER_HOST"),
                                      "unix:///var/run/docker.sock"]):
                if _answers(host):
                    return cls(host, _lock=lock)
            if _answers(OWN_HOST) and OWN_PIDFILE.exists():  # left by a killed session of ours
                return cls(OWN_HOST, int(OWN_PIDFILE.read_text()), _lock=lock)
            return cls._start(lock)
        except BaseException:
            lock.close()
            raise

    @classmethod
    def _start(cls, lock: IO[str]) -> Daemon:
        missing = [tool for tool in ("docker", "dockerd", "containerd", "runc")
                   if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
        if missing:
            raise DockerUnavailable(f"no Docker daemon answers and {missing} are not installed "
                                    "(Debian package docker.io; scripts/system-deps.sh installs it)")
        if os.geteuid() != 0:
            raise DockerUnavailable("no Docker daemon answers, and starting dockerd needs root")
        home = cache_dir() / "dockerd"
        home.mkdir(exist_ok=True)
        _unmount_leftovers()
        OWN_RUN_DIR.mkdir(mode=0o700, exist_ok=True)
        log_path = home / "dockerd.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [shutil.which("dockerd") or "/usr/sbin/dockerd", "--data-root", str(home / "root"),
                 "--exec-root", str(OWN_RUN_DIR / "exec"), "--pidfile", str(OWN_PIDFILE),
                 "--host", OWN_HOST, "--bridge", "none", "--iptables=false", "--ip-masq=false"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        daemon = cls(OWN_HOST, process.pid, process, lock)
        deadline = time.monotonic() + 60
        while not _answers(OWN_HOST):
            if process.poll() is not None or time.monotonic() > deadline:
                daemon.stop()
                raise DockerUnavailable(f"dockerd did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        return daemon

    def stop(self) -> None:
        """Stop the daemon if these tests started it (never one they found running)."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)  # dockerd stops its containerd too
            except ProcessLookupError:
                pass
            if self.process is not None:
                try:
                    self.process.wait(60)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
            else:
                deadline = time.monotonic() + 60
                while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.3)
            self.pid = None
            _unmount_leftovers()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _unmount_leftovers() -> None:
    """dockerd leaves its network namespace file mounted under its exec root when it exits."""
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in points:
        if point.startswith(f"{OWN_RUN_DIR}/"):
            subprocess.run(["umount", point], capture_output=True, timeout=30)


def _answers(host: str) -> bool:
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    try:
        done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              env=dict(os.environ, DOCKER_HOST=host), capture_output=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def apt_mirror() -> Path:
    """The apt sources file of this machine: the base image comes from the same mirror."""
    for path in APT_SOURCES:
        if path.exists() and path.read_text().strip():
            return path
    raise DockerUnavailable(f"none of {[str(p) for p in APT_SOURCES]} names a Debian mirror")


def base_image(daemon: Daemon) -> str:
    """`vfl-base:bookworm`, imported once from an mmdebstrap tarball; returns its name."""
    if daemon.inspect("image", BASE_IMAGE) is not None:
        return BASE_IMAGE
    if shutil.which("mmdebstrap") is None:
        raise DockerUnavailable("mmdebstrap is not installed (scripts/system-deps.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="vfl-base-") as tmp:
        tar = Path(tmp) / "base.tar"
        run(["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(tar),
             str(apt_mirror())], timeout=1200)
        daemon.docker("import", str(tar), BASE_IMAGE, timeout=600)
    return BASE_IMAGE


@dataclass
class Compose:
    """`docker-compose` (or `docker compose`) on one project: a compose file and environment."""

    daemon: Daemon
    file: Path
    project: str
    env: dict[str, str]

    def command(self) -> list[str]:
        if shutil.which("docker-compose"):
            return ["docker-compose"]
        return ["docker", "compose"]

    def __call__(self, *args: str, timeout: float = 900, check: bool = True,
                 ) -> subprocess.CompletedProcess[str]:
        return run([*self.command(), "--file", str(self.file), "--project-name", self.project,
                    *args], env={**self.daemon.env, **self.env}, timeout=timeout, check=check,
                   cwd=self.file.parent)

    def container(self, service: str) -> str:
        out = self("ps", "-q", service).stdout.split()
        assert out, f"no container for service {service}"
        return out[0]

    def wait_healthy(self, service: str, timeout: float = 180) -> dict[str, Any]:
        """Wait for the service's health check to report healthy; returns the container's state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.daemon.inspect("container", self.container(service))
            assert state is not None
            health = state["State"].get("Health", {})
            if health.get("Status") == "healthy":
                return state
            if not state["State"]["Running"] or time.monotonic() > deadline:
                logs = self("logs", "--tail", "60", service, check=False)
                raise AssertionError(f"{service} is not healthy: {state['State']}\n"
                                     f"{logs.stdout[-4000:]}{logs.stderr[-2000:]}")
            time.sleep(1)

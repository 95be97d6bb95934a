"""The process pool that heavy crypto work runs on (gmpy2 holds the GIL, so threads won't do).

One pool per OS process (a party service, a simulation, a notebook), started once and reused
by every job. Starting it costs seconds (a fork server, one worker per core), so a party
service starts it when it starts, and a simulation while its parties load their data
(`start_in_background`). The fork server imports the workers' modules once, before it forks.

Workers run vfl's own functions only, so they never re-run the caller's main module: a plain
script without an ``if __name__ == "__main__":`` guard works. (multiprocessing would
otherwise re-import the script in every worker, which runs it again and breaks the pool.)

Workers end with the process that owns the pool, even when it is killed (SIGKILL leaves no
chance to shut the pool down): each watches its owner and exits when the owner is gone, and
the fork server then exits with its last worker.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import sys
import threading
import types
from collections.abc import Iterator
from concurrent.futures import CancelledError, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.context import ForkServerContext, ForkServerProcess
from typing import Any

log = logging.getLogger(__name__)

WORKER_MODULES = ["vfl.psi.x25519", "vfl.crypto.kernels"]
"""What the workers run: imported by the fork server once, inherited by every worker."""

_lock = threading.Lock()
_main_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_size = 0
_warming: threading.Thread | None = None


@contextmanager
def _main_hidden() -> Iterator[None]:
    """While a worker starts, the caller's main module is out of sight: multiprocessing would
    tell the worker to import it (to find functions defined there), and vfl's need none."""
    with _main_lock:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


class _Worker(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with _main_hidden():
            return ForkServerProcess._Popen(process_obj)


class _Context(ForkServerContext):
    """`forkserver` keeps workers free of the parent's threads and sockets (gRPC, mailboxes)."""

    Process = _Worker


def shared_process_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """This process's pool, created on first use with one worker per core (``VFL_WORKERS``)."""
    global _pool, _size
    with _lock:
        if _pool is None:
            _size = workers or int(os.environ.get("VFL_WORKERS", "0")) or os.cpu_count() or 1
            context = _Context()
            context.set_forkserver_preload(WORKER_MODULES)
            _pool = ProcessPoolExecutor(_size, mp_context=context, initializer=_exit_with_owner,
                                        initargs=(os.getpid(),))
            atexit.register(_pool.shutdown, cancel_futures=True)
        return _pool


def _exit_with_owner(owner: int) -> None:
    """Worker initializer: a daemon thread ends this worker once `owner` (the process whose
    pool it serves) has exited."""
    threading.Thread(target=_watch, args=(owner,), name="vfl-owner-watch", daemon=True).start()


def _watch(owner: int) -> None:
    try:
        if hasattr(os, "pidfd_open"):  # Linux: the descriptor turns readable when the owner exits
            fd = os.pidfd_open(owner)
            select.select([fd], [], [])
        else:
            while True:
                os.kill(owner, 0)  # raises once the owner is gone
                threading.Event().wait(1.0)
    except ProcessLookupError:
        pass  # gone before the watch began
    os._exit(0)


def start_in_background() -> threading.Thread:
    """Start every worker of the pool now, in a daemon thread, so that the first job does not
    wait for them; later calls return the same thread."""
    global _warming
    with _lock:
        if _warming is None:
            _warming = threading.Thread(target=_start_workers, name="vfl-pool-start", daemon=True)
            _warming.start()
        return _warming


def _start_workers() -> None:
    pool = shared_process_pool()
    try:
        for future in [pool.submit(os.getpid) for _ in range(_size)]:
            future.result()
    except CancelledError:
        return  # the process began to exit before its workers were up
    except RuntimeError as exc:
        if "shutdown" not in str(exc):  # submit's refusal once the process exits: not a fault
            log.warning("could not start the process pool in advance: %s", exc)
    except Exception as exc:  # the first job meets the same failure and reports it
        log.warning("could not start the process pool in advance: %s", exc)

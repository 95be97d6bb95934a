"""The process pool that heavy crypto work runs on (gmpy2 holds the GIL, so threads won't do)."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def shared_process_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """One pool per OS process, created on first use with one worker per core.

    `forkserver` keeps workers free of the parent's threads and sockets (gRPC, mailboxes).
    """
    global _pool
    with _lock:
        if _pool is None:
            n = workers or int(os.environ.get("VFL_WORKERS", "0")) or os.cpu_count() or 1
            _pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("forkserver"))
            atexit.register(_pool.shutdown, cancel_futures=True)
        return _pool

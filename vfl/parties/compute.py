"""Where a party's heavy work runs: its own process pool, or its own Dask cluster.

The protocols see only ``PartyRuntime.executor``, a `concurrent.futures.Executor`: the Paillier
kernels, the PSI hashing and scalar multiplications and the split NN's interactive layer submit
their chunks to it and never learn which engine runs them. Two more things an executor may
offer, both read by `vfl.crypto.kernels`:

- ``_max_workers``: how many chunks to cut work into (the attribute `ProcessPoolExecutor`
  has; a Dask cluster's counts the threads of its workers when asked);
- ``share(value)``: an operand every chunk of one call needs (say the exponent matrix of
  ``[[A]] W``), sent once to every worker instead of with every task. The local pool has no
  such method: its tasks carry their operands (`kernels.share` returns the value itself).

A cluster also keeps data on its workers (``partitioned_tables``): ``keep(fn, *args)`` runs a
task whose result stays where it was computed, and the handle it returns stands for that
result in the arguments of later tasks (`vfl.serving.partitioned` keeps a feature table there,
partitioned by id). A kept result lost with its worker is computed again from its task.

A Dask cluster is internal to one party: its scheduler, workers and the party's `vfl serve`
(the Dask client) talk over TLS with the party's own certificates; a worker never talks to
another party. `dask.distributed` is imported only when ``engine: dask`` is configured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from vfl.errors import ConfigError
from vfl.parties.config import ComputeConfig, TlsConfig
from vfl.parties.executor import shared_process_pool, start_in_background

log = logging.getLogger(__name__)


class Compute:
    """The engine behind a party's executor: the local process pool (this class) or a Dask
    cluster (`DaskCompute`)."""

    engine = "local"
    partitioned_tables = False
    """Whether PSI reads a file table partition by partition on the workers (`vfl.psi.partitioned`)
    instead of loading it in the service."""

    @property
    def executor(self) -> Executor:
        """Where the protocols submit their chunks."""
        return shared_process_pool()

    def start(self) -> None:
        """Get the workers ready before the first job (the local pool starts them in the
        background)."""
        start_in_background()

    def describe(self) -> dict[str, Any]:
        """The engine and its size, for health output and the service's start-up log."""
        return {"engine": self.engine, "workers": getattr(self.executor, "_max_workers", 0)}

    def tasks(self) -> tuple[int, int] | None:
        """Tasks finished and submitted on a cluster since it was connected (None: no
        cluster)."""
        return None

    def close(self) -> None:
        """Release the engine (the local pool ends with the process)."""


class DaskExecutor(Executor):
    """`Client.get_executor()` with what the kernels read beside `submit`: the worker count
    (``_max_workers``) and ``share``. Tasks are submitted impure (encryption draws fresh
    randomness: two calls are two tasks) and retried on failure; a worker that dies mid-task
    has its tasks rescheduled by the scheduler on the others."""

    def __init__(self, client: Any, retries: int) -> None:
        self._client = client
        self._retries = retries
        self._inner = client.get_executor(pure=False, retries=retries)
        self._lock = threading.Lock()
        self.done = self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._counted(self._inner.submit(fn, *args, **kwargs))

    def _counted(self, future: Any) -> Any:
        """`future` (either kind) counted as submitted, and as done once it succeeds."""
        with self._lock:
            self.submitted += 1
        future.add_done_callback(self._count)
        return future

    def _count(self, future: Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            with self._lock:
                self.done += 1

    @property
    def _max_workers(self) -> int:
        return max(1, sum(self._client.nthreads().values()))

    def share(self, value: Any) -> Any:
        """`value` on every worker once; the returned handle stands for it in task arguments."""
        return self._client.scatter(value, broadcast=True, hash=False)

    def keep(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """Run ``fn(*args)`` on a worker and leave the result there: the returned handle stands
        for it in later tasks' arguments (handles among `args` are their kept results). The
        result is freed once no handle refers to it."""
        return self._counted(self._client.submit(fn, *args, pure=False, retries=self._retries))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait)


class DaskCompute(Compute):
    """A connection to the party's own Dask scheduler, over TLS."""

    engine = "dask"
    partitioned_tables = True

    def __init__(self, config: ComputeConfig, party_tls: TlsConfig | None, party: str) -> None:
        tls = config.tls or party_tls
        if tls is None:
            raise ConfigError(f"party '{party}': compute.tls (ca, cert, key) is needed for the "
                              f"Dask scheduler {config.scheduler} (or the party's own `tls`)")
        from distributed import Client
        from distributed.security import Security

        security = Security(tls_ca_file=str(tls.ca), tls_client_cert=str(tls.cert),
                            tls_client_key=str(tls.key), require_encryption=True)
        self.address = str(config.scheduler)
        try:
            self.client = Client(self.address, security=security, timeout=config.connect_timeout,
                                 set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"party '{party}': cannot reach its Dask scheduler at {self.address} "
                f"(compute.scheduler) within {config.connect_timeout:g} s: {exc}") from exc
        self._executor = DaskExecutor(self.client, config.retries)

    @property
    def executor(self) -> Executor:
        return self._executor

    def start(self) -> None:
        info = self.describe()
        if not info["workers"]:
            log.warning("Dask scheduler %s has no workers yet: jobs wait until one joins",
                        self.address)

    def describe(self) -> dict[str, Any]:
        nthreads = self.client.nthreads()
        return {"engine": self.engine, "scheduler": self.address, "workers": len(nthreads),
                "threads": sum(nthreads.values()), "dashboard": self.client.dashboard_link}

    def tasks(self) -> tuple[int, int] | None:
        return self._executor.done, self._executor.submitted

    def close(self) -> None:
        self._executor.shutdown(wait=False)
        self.client.close()


def connect(config: ComputeConfig, party_tls: TlsConfig | None, party: str) -> Compute:
    """The party's compute engine; for Dask, connected now (ConfigError naming the scheduler
    address when it cannot be reached)."""
    if config.engine == "dask":
        return DaskCompute(config, party_tls, party)
    return Compute()

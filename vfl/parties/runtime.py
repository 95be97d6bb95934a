"""A party's local resources: its config, its datasets, its store and its compute engine."""

from __future__ import annotations

from concurrent.futures import Executor
from functools import cached_property
from pathlib import Path

from vfl.connectors import Dataset, load_dataset
from vfl.errors import ConfigError
from vfl.names import check_name
from vfl.parties.compute import Compute, connect
from vfl.parties.config import PartyConfig
from vfl.store.files import inside, private_dir
from vfl.store.models import ModelStore


class PartyRuntime:
    """What a role may touch on its own side. Nothing here is ever sent to a peer."""

    def __init__(self, config: PartyConfig, executor: Executor | None = None,
                 compute: Compute | None = None) -> None:
        self.config = config
        self._executor = executor
        self._compute = compute
        self._datasets: dict[str, Dataset] = {}

    @property
    def name(self) -> str:
        return self.config.name

    @cached_property
    def store_dir(self) -> Path:
        return private_dir(Path(self.config.store.path))

    @property
    def compute(self) -> Compute:
        """The engine behind `executor` (``compute:`` in the party config): the local process
        pool, or the party's own Dask cluster, connected on first use."""
        if self._compute is None:
            self._compute = connect(self.config.compute, self.config.tls, self.name)
        return self._compute

    @property
    def executor(self) -> Executor:
        """Where the protocols' heavy chunks run; they never learn which engine it is."""
        if self._executor is None:
            self._executor = self.compute.executor
        return self._executor

    def close(self) -> None:
        """Let go of the compute engine if it was started (a Dask client disconnects)."""
        if self._compute is not None:
            self._compute.close()

    def dataset(self, name: str) -> Dataset:
        """The named dataset from this party's config, loaded and validated once."""
        if name not in self.config.datasets:
            raise ConfigError(
                f"party '{self.name}' has no dataset '{name}' "
                f"(configured: {sorted(self.config.datasets) or 'none'})"
            )
        if name not in self._datasets:
            self._datasets[name] = load_dataset(self.config.datasets[name], name=name)
        return self._datasets[name]

    def model_store(self) -> ModelStore:
        """This party's registry of its own model parts."""
        return ModelStore.of(self.config)

    def job_dir(self, job_id: str, *parts: str) -> Path:
        """Where a job's artifacts and checkpoints live on this party (0700, always inside
        ``<store>/jobs``: the job id and each part must be safe names)."""
        check_name(job_id, "job_id")
        return private_dir(inside(self.store_dir / "jobs", job_id, *parts))

"""Per-epoch checkpoints of one party's training state, in its own directory (npz + json).

Each epoch writes `epoch_<k>.npz` (arrays) then `epoch_<k>.json` (metadata); the json is
written last via an atomic rename, so an epoch counts as saved only when both are complete.
The last `keep` epochs are kept: parties may be one epoch apart when a job is killed, and
they resume from the newest epoch both have.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vfl.errors import ConfigError
from vfl.store.files import inside, private_dir, seal


class EpochCheckpoints:
    def __init__(self, directory: str | Path, keep: int = 2) -> None:
        self.directory = Path(directory)
        self.keep = keep
        private_dir(self.directory)

    def _path(self, epoch: int, suffix: str) -> Path:
        return inside(self.directory, f"epoch_{epoch:05d}{suffix}")

    def epochs(self) -> list[int]:
        """Completed epochs on disk, ascending."""
        done = []
        for p in self.directory.glob("epoch_*.json"):
            try:
                done.append(int(p.stem.split("_")[1]))
            except ValueError:
                continue
        return sorted(e for e in done if self._path(e, ".npz").exists())

    def latest(self) -> int:
        """The last completed epoch, -1 when there is none."""
        found = self.epochs()
        return found[-1] if found else -1

    def save(self, epoch: int, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        npz, js = self._path(epoch, ".npz"), self._path(epoch, ".json")
        tmp_npz, tmp_js = npz.with_suffix(".npz.tmp"), js.with_suffix(".json.tmp")
        with open(tmp_npz, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy stubs: **kwds vs allow_pickle
            f.flush()
            os.fsync(f.fileno())
        seal(tmp_npz)
        os.replace(tmp_npz, npz)
        with open(tmp_js, "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        seal(tmp_js)
        os.replace(tmp_js, js)
        for old in self.epochs()[: -self.keep]:
            self._path(old, ".json").unlink(missing_ok=True)
            self._path(old, ".npz").unlink(missing_ok=True)

    def discard_after(self, epoch: int) -> None:
        """Drop epochs newer than the one the parties agreed to resume from (-1: all)."""
        for later in self.epochs():
            if later > epoch:
                self._path(later, ".json").unlink(missing_ok=True)
                self._path(later, ".npz").unlink(missing_ok=True)

    def load(self, epoch: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        npz, js = self._path(epoch, ".npz"), self._path(epoch, ".json")
        if not (npz.exists() and js.exists()):
            raise ConfigError(
                f"no checkpoint of epoch {epoch} in {self.directory} (have {self.epochs()}); "
                "the parties' checkpoint directories do not belong to the same job: "
                "remove them to start over"
            )
        with np.load(npz, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        with open(js) as f:
            meta = json.load(f)
        return arrays, meta

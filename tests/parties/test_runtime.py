"""A party's job folders and checkpoints: inside its store, private."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from vfl.algorithms.checkpoint import EpochCheckpoints
from vfl.errors import UnsafeNameError
from vfl.parties.config import PartyConfig
from vfl.parties.runtime import PartyRuntime


def test_job_folders_stay_in_the_store_and_checkpoints_are_private(tmp_path):
    runtime = PartyRuntime(PartyConfig(name="bank", store={"path": str(tmp_path / "store")}))
    for job_id, parts in (("..", ("train",)), (".", ()), ("a\x00", ()), ("/etc", ()), ("ｊ", ()),
                          ("ok", ("..", "..")), ("ok", ("/tmp",))):
        with pytest.raises(UnsafeNameError):
            runtime.job_dir(job_id, *parts)
    (tmp_path / "outside").mkdir()
    (tmp_path / "store" / "jobs").mkdir(parents=True)
    (tmp_path / "store" / "jobs" / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(UnsafeNameError, match="is outside"):
        runtime.job_dir("linked", "train")
    assert list((tmp_path / "outside").iterdir()) == []

    old = os.umask(0o022)
    try:
        folder = runtime.job_dir("job-1", "train")
        EpochCheckpoints(folder).save(0, {"w": np.ones(3)}, {"epoch": 0})
    finally:
        os.umask(old)
    for path in [tmp_path / "store", *(tmp_path / "store" / "jobs" / "job-1").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"

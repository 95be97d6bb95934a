"""The training session's checkpoints, shared by every algorithm: a party's nested state
round-trips exactly, an interrupted save does not count, another plan's directory is refused,
and a resumed run starts from the newest complete epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vfl.algorithms.session import SessionCheckpoints
from vfl.errors import ConfigError


def _state(step: float) -> dict:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    return {
        "arrays": {"w": np.arange(4.0) * step, "opt_t": np.array(3)},
        "history": [{"epoch": 1, "val_auc": 0.75, "stop": False}],
        "validation": {"history": [], "best_epoch": None, "best_score": None},
        "optimizer": {k: v for k, v in opt.state_dict().items()},  # int keys, tuples, 0-d arrays
    }


def _as_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {k: _as_numpy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_numpy(v) for v in value]
    return value


def test_a_nested_state_round_trips_with_its_arrays_and_keys(tmp_path: Path) -> None:
    state = _as_numpy(_state(1.0))
    ckpt = SessionCheckpoints(tmp_path, "plan-a")
    ckpt.save(0, state)
    loaded = SessionCheckpoints(tmp_path, "plan-a").load(0)
    np.testing.assert_array_equal(loaded["arrays"]["w"], state["arrays"]["w"])
    assert loaded["history"] == state["history"] and loaded["validation"] == state["validation"]
    assert set(loaded["optimizer"]["state"]) == {0, 1}  # the optimizer's int keys survive
    np.testing.assert_array_equal(loaded["optimizer"]["state"][0]["exp_avg"],
                                  state["optimizer"]["state"][0]["exp_avg"])
    assert loaded["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.999]
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pt"))  # no pickle


def test_resume_starts_from_the_newest_complete_epoch(tmp_path: Path) -> None:
    ckpt = SessionCheckpoints(tmp_path, "plan-a")
    for epoch in range(3):
        ckpt.save(epoch, _as_numpy(_state(float(epoch))))
    assert ckpt.epochs() == [1, 2]  # the newest two are kept
    # a save that died before its metadata was renamed in place does not count
    (tmp_path / "epoch_00003.npz").write_bytes(b"partial")
    (tmp_path / "epoch_00003.json.tmp").write_text("{")
    resumed = SessionCheckpoints(tmp_path, "plan-a")
    assert resumed.latest() == 2
    np.testing.assert_array_equal(resumed.load(2)["arrays"]["w"], np.arange(4.0) * 2)
    resumed.discard_after(1)
    assert resumed.epochs() == [1]


def test_another_plans_directory_is_refused(tmp_path: Path) -> None:
    SessionCheckpoints(tmp_path, "plan-a").save(0, {"w": np.zeros(2)})
    with pytest.raises(ConfigError, match=f"{tmp_path}.*holds another job"):
        SessionCheckpoints(tmp_path, "plan-b")


def test_a_state_that_is_not_plain_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cannot hold a object"):
        SessionCheckpoints(tmp_path, "plan-a").save(0, {"x": object()})

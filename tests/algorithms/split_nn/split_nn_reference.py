"""The centralized twin of a split NN: same modules, same schedule, on the joined data.

It is the yardstick for fidelity checks and benchmarks: what the federated model would be if
one party held every column. The interactive layer is a bias-free linear map trained with
SGD + momentum, the rest with the given optimizer, batches in the plan's order.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from vfl.algorithms.split_nn.plan import batches


class CentralizedSplitNN(nn.Module):
    epoch_seconds: list[float]

    def __init__(self, guest_bottom: nn.Module | None, host_bottom: nn.Module, top: nn.Module,
                 W0: np.ndarray) -> None:
        super().__init__()
        self.guest_bottom = copy.deepcopy(guest_bottom)
        self.host_bottom = copy.deepcopy(host_bottom)
        self.top = copy.deepcopy(top)
        self.interactive = nn.Linear(W0.shape[0], W0.shape[1], bias=False)
        with torch.no_grad():
            self.interactive.weight.copy_(torch.from_numpy(W0.T.copy()))

    def forward(self, Xg: torch.Tensor, Xh: torch.Tensor) -> torch.Tensor:
        z = self.interactive(self.host_bottom(Xh))
        if self.guest_bottom is not None:
            z = z + self.guest_bottom(Xg)
        return self.top(z).reshape(len(Xg), -1)[:, 0]

    @torch.no_grad()
    def predict_proba(self, Xg: np.ndarray, Xh: np.ndarray) -> np.ndarray:
        self.eval()
        logits = self(torch.from_numpy(np.asarray(Xg, np.float32)), torch.from_numpy(np.asarray(Xh, np.float32)))
        return torch.sigmoid(logits).double().numpy()


def fit_centralized(
    model: CentralizedSplitNN, Xg: np.ndarray, Xh: np.ndarray, y: np.ndarray, *, epochs: int,
    batch_size: int, seed: int = 0, optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
    optimizer_kwargs: dict[str, Any] | None = None, interactive_lr: float = 0.1,
    interactive_momentum: float = 0.9,
) -> CentralizedSplitNN:
    Xg_t = torch.from_numpy(np.asarray(Xg, np.float32))
    Xh_t = torch.from_numpy(np.asarray(Xh, np.float32))
    y_t = torch.from_numpy(np.asarray(y, np.float32))
    rest = [p for name, p in model.named_parameters() if not name.startswith("interactive.")]
    opt = optimizer(rest, **(optimizer_kwargs or {}))
    opt_w = torch.optim.SGD(model.interactive.parameters(), lr=interactive_lr,
                            momentum=interactive_momentum)
    model.train()
    model.epoch_seconds = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        for rows in batches(len(y_t), batch_size, seed, epoch):
            idx = torch.from_numpy(rows)
            loss = nn.functional.binary_cross_entropy_with_logits(model(Xg_t[idx], Xh_t[idx]), y_t[idx])
            opt.zero_grad()
            opt_w.zero_grad()
            loss.backward()
            opt.step()
            opt_w.step()
        model.epoch_seconds.append(time.perf_counter() - t0)
    return model

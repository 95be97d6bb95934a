"""The shared data sets (``../shared/data`` beside the checkout) as the fidelity tests and the
benchmarks read them: a guest table (``id``, ``y``, features) and a host table (``id``,
features) per data set, the host's rows in another order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def hetero_split(name: str, folder: Path = SHARED_DATA) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """The guest's features, its labels and the host's features of data set `name`
    (``breast``, ``default_credit``), the host's rows aligned with the guest's by id."""
    guest = pd.read_csv(folder / f"{name}_hetero_guest.csv")
    host = pd.read_csv(folder / f"{name}_hetero_host.csv").set_index("id").loc[guest["id"]]
    return guest.drop(columns=["id", "y"]), guest["y"].to_numpy(), host.reset_index(drop=True)


def shuffled_80_20(name: str, folder: Path = SHARED_DATA) -> dict[str, np.ndarray]:
    """`hetero_split` as float32 arrays, rows shuffled with seed 42, the first 80% for training
    (``Xg``, ``Xh``, ``y``) and the rest for testing (``Xg_te``, ``Xh_te``, ``y_te``)."""
    Xg, y, Xh = hetero_split(name, folder)
    order = np.random.default_rng(42).permutation(len(y))
    cut = int(0.8 * len(y))
    g, h, y = Xg.to_numpy(np.float32)[order], Xh.to_numpy(np.float32)[order], y[order]
    return {"Xg": g[:cut], "Xh": h[:cut], "y": y[:cut], "Xg_te": g[cut:], "Xh_te": h[cut:], "y_te": y[cut:]}

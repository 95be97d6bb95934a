"""Split NN with the HE interactive layer, its Paillier work on a Dask cluster (real TLS
scheduler and 2 workers): the same model as on the local pool. The protocol code is the same;
only the executor behind the parties' contexts differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vfl.algorithms.split_nn.estimator import SplitNNClassifier, SplitNNHost
from vfl.algorithms.split_nn.nn_spec import mlp
from vfl.parties import simulate
from vfl.parties.compute import connect
from vfl.parties.config import ComputeConfig
from vfl.parties.executor import shared_process_pool

ROLES = {"bank": "guest", "partner": "host"}


def _fit_and_predict(data: dict[str, np.ndarray], executor: Any) -> tuple[np.ndarray, int]:
    torch.manual_seed(0)
    gb, hb, top = mlp(data["Xg"].shape[1], [16], 8), mlp(data["Xh"].shape[1], [16], 8), mlp(8, [8], 1)
    clf = SplitNNClassifier(guest_bottom=gb, top=top, mode="he", epochs=1, batch_size=128,
                            optimizer_kwargs={"lr": 0.01}, key_bits=1024, share_seed=11)
    host = SplitNNHost(bottom=hb, optimizer_kwargs={"lr": 0.01}, key_bits=1024, random_state=12)
    simulate({"bank": (clf.fit, {"X": data["Xg"], "y": data["y"]}),
              "partner": (host.fit, {"X": data["Xh"]})}, roles=ROLES, executor=executor, timeout=300)
    out = simulate({"bank": (clf.predict_proba, {"X": data["Xg"]}),
                    "partner": (host.predict, {"X": data["Xh"]})}, roles=ROLES, executor=executor)
    return np.asarray(out["bank"])[:, 1], len(clf.history_)


def test_he_split_nn_on_dask_is_the_local_model(shared_data: Path, dask_cluster) -> None:
    g = pd.read_csv(shared_data / "breast_hetero_guest.csv")
    h = pd.read_csv(shared_data / "breast_hetero_host.csv").set_index("id").loc[g["id"]]
    data = {"Xg": g.drop(columns=["id", "y"]).to_numpy(np.float32),
            "Xh": h.to_numpy(np.float32), "y": g["y"].to_numpy()}
    local, epochs = _fit_and_predict(data, shared_process_pool())
    compute = connect(ComputeConfig(**dask_cluster.compute_section()), None, "bank")
    try:
        remote, _ = _fit_and_predict(data, compute.executor)
        done, submitted = compute.tasks() or (0, 0)
    finally:
        compute.close()
    assert epochs == 1 and done == submitted > 0  # the interactive layer's crypto ran on the cluster
    # The guest's weight-gradient masks R2 are fresh on every run (never seeded: they hide A^T G
    # from the host), so the fixed-point rounding of A^T G + R2 differs in the last bits from run
    # to run on any engine: ~3e-8 here, far inside the 1e-3 of the HE fidelity test.
    np.testing.assert_allclose(remote, local, rtol=0, atol=1e-6)

"""The train step of a job for every algorithm: a whole job (PSI, split, per-party
preprocessing, training, evaluation, export, batch scoring) through `run_simulated`, then
serving from each party's model store must reproduce the trained model's scores.

Data: scikit-learn's breast cancer table split by columns (guest: label + 10 features, host:
20 features), so these tests need no shared data. HE runs use 1024-bit keys for speed. The
slow test runs the job across two `vfl serve` OS processes (mTLS) and scores online over gRPC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.jobs.breast_job import run_served, served_scores, write_job
from vfl.config import load_job_config
from vfl.connectors import read_table
from vfl.errors import ConfigError, ProtocolError
from vfl.runner import run_simulated

MODEL_ID = "breast-nn"
HOST_NN = {"bottom": {"hidden": [16], "out": 6}, "optimizer": "adam",
           "optimizer_kwargs": {"lr": 0.01}, "key_bits": 1024, "init_seed": 3}


@pytest.mark.parametrize("mode", ["he", "insecure_plaintext"])
def test_split_nn_job_trains_exports_and_serves_the_same_scores(tmp_path: Path, mode: str) -> None:
    params = {"mode": mode, "epochs": 3, "batch_size": 64, "interactive_width": 4,
              "guest_bottom": {"hidden": [8]}, "top": {"hidden": [4]}, "optimizer": "adam",
              "optimizer_kwargs": {"lr": 0.01}, "key_bits": 1024, "random_state": 5}
    # in insecure_plaintext mode the host's own policy must allow the less private mode
    job_yaml = write_job(tmp_path, "split_nn", params, MODEL_ID, host_models={"split_nn": HOST_NN},
                         allow_insecure=mode == "insecure_plaintext")

    outcome = run_simulated(load_job_config(job_yaml))
    assert outcome.metrics["auc"] > 0.95, outcome.metrics

    # the trained model's joint scores of the test rows, as the evaluate step wrote them
    trained = read_table(str(tmp_path / "reports" / outcome.job_id / "test_scores.csv"))
    served, bundles = served_scores(tmp_path, trained["id"], MODEL_ID)
    assert served["missing"].eq("").all()
    np.testing.assert_allclose(served["score"], trained["score"], rtol=0, atol=1e-6)

    # each party's part is its own: the host's W is (its bottom width) x (interactive width)
    assert bundles["partner"].algorithm == bundles["bank"].algorithm == "split_nn"
    assert bundles["partner"].part.W.shape == (6, 4)
    assert bundles["partner"].part.bottom[0].in_features == 20

    # the job's batch scoring went through the same parts
    batch = read_table(str(tmp_path / "scores.csv")).set_index("id")
    np.testing.assert_allclose(batch.loc[trained["id"], "score"], trained["score"], rtol=0, atol=1e-6)


def test_split_nn_job_needs_the_hosts_own_bottom_model(tmp_path: Path) -> None:
    """The guest cannot supply the host's model: without `models.split_nn.bottom` in the
    host's config the host refuses at once (the guest does not wait for a timeout)."""
    job_yaml = write_job(tmp_path, "split_nn", {"epochs": 1, "key_bits": 1024}, MODEL_ID)
    with pytest.raises((ConfigError, ProtocolError),
                       match=r"models\.split_nn\.bottom|split NN settings are invalid"):
        run_simulated(load_job_config(job_yaml))


def test_split_nn_job_params_errors_name_the_field(tmp_path: Path) -> None:
    job_yaml = write_job(tmp_path, "split_nn", {"epochs": 1, "optimizer": "adamm", "key_bits": 1024},
                         MODEL_ID, host_models={"split_nn": HOST_NN})
    with pytest.raises(ConfigError, match=r"steps\.train\.params\.optimizer: optimizer must be"):
        run_simulated(load_job_config(job_yaml))


@pytest.mark.slow
def test_split_nn_job_between_two_served_parties(tmp_path: Path) -> None:
    """The same job across two `vfl serve` OS processes (mTLS, the party's own process pool):
    the bank submits with `vfl run`, then scores online through its service over gRPC (the
    partner's service computes A W per id); the online scores equal the trained model's."""
    params = {"epochs": 2, "batch_size": 128, "interactive_width": 4, "optimizer_kwargs": {"lr": 0.01},
              "key_bits": 1024}
    job_yaml = write_job(tmp_path, "split_nn", params, MODEL_ID, host_models={"split_nn": HOST_NN})
    summary, trained, online = run_served(tmp_path, job_yaml, MODEL_ID, plugins=[])
    assert summary["auc"] > 0.9, summary
    np.testing.assert_allclose(online["score"], trained["score"], rtol=0, atol=1e-6)

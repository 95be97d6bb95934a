"""The algorithm registry: a third algorithm registered from `tests/` (no edit in `vfl/`)
trains, exports and serves through a job, and nothing in `vfl/` dispatches on algorithm names.

Data: scikit-learn's breast cancer table split by columns (guest: label + 10 features, host:
20 features, in another row order).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.algorithms import fed_linear
from tests.jobs.breast_job import run_served, served_scores, write_job
from vfl.algorithms import registry
from vfl.config import load_job_config
from vfl.connectors import read_table
from vfl.errors import ConfigError, PolicyError
from vfl.runner import run_simulated

MODEL_ID = "breast-linear"
VFL = Path(__file__).resolve().parents[2] / "vfl"


def _write_job(tmp: Path, allow_insecure: bool = True, **evaluate: Any) -> Path:
    return write_job(tmp, fed_linear.NAME, {"epochs": 60}, MODEL_ID, allow_insecure=allow_insecure,
                     evaluate={"bootstrap": 0, **evaluate})


def test_a_registered_third_algorithm_trains_exports_and_serves_through_a_job(tmp_path: Path) -> None:
    outcome = run_simulated(load_job_config(_write_job(tmp_path)))
    assert outcome.metrics["auc"] > 0.95, outcome.metrics

    # each party's store holds its own part of the new algorithm; served, they give the same scores
    trained = read_table(str(tmp_path / "reports" / outcome.job_id / "test_scores.csv"))
    served, bundles = served_scores(tmp_path, trained["id"], MODEL_ID)
    assert isinstance(bundles["bank"].part, fed_linear.GuestPart)
    assert isinstance(bundles["partner"].part, fed_linear.HostPart)
    assert bundles["partner"].part.coef.shape == (20,)
    assert bundles["bank"].algorithm == bundles["partner"].algorithm == fed_linear.NAME

    assert served["missing"].eq("").all()
    np.testing.assert_allclose(served["score"], trained["score"], rtol=0, atol=1e-9)

    # the job's batch scoring went through the same parts
    batch = read_table(str(tmp_path / "scores.csv")).set_index("id")
    np.testing.assert_allclose(batch.loc[trained["id"], "score"], trained["score"], rtol=0, atol=1e-9)


def test_the_hosts_policy_still_decides_for_a_registered_algorithm(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="residuals in the clear"):
        run_simulated(load_job_config(_write_job(tmp_path, allow_insecure=False)))


def test_the_job_config_learns_algorithms_and_their_params_from_the_registry(tmp_path: Path) -> None:
    job_yaml = _write_job(tmp_path)
    text = job_yaml.read_text()
    job_yaml.write_text(text.replace("epochs: 60", "epoch: 60"))
    with pytest.raises(ConfigError, match=r"steps\.train\.params: unknown parameter 'epoch'; did you mean 'epochs'"):
        load_job_config(job_yaml)
    job_yaml.write_text(text.replace(f"algorithm: {fed_linear.NAME}", "algorithm: fed_linaer"))
    with pytest.raises(ConfigError, match=r"steps\.train\.algorithm.*'fed_linaer' is not available.*fed_linear"):
        load_job_config(job_yaml)
    assert {"hetero_lr", "split_nn", fed_linear.NAME} <= set(registry.names())


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register_algorithm("hetero_lr")(fed_linear.FedLinear)


def test_nothing_in_vfl_dispatches_on_algorithm_names() -> None:
    dispatch = re.compile(r"if .*algorithm (==|!=)|PART_TYPES")
    found = [f"{path.relative_to(VFL)}:{i}" for path in VFL.rglob("*.py")
             for i, line in enumerate(path.read_text().splitlines(), 1) if dispatch.search(line)]
    assert found == []


@pytest.mark.slow
def test_a_registered_third_algorithm_runs_between_two_served_parties(tmp_path: Path) -> None:
    """Two `vfl serve` OS processes (mutual TLS) that list the algorithm's module in their
    `plugins`: the bank submits the job with `vfl run`, then scores online over gRPC; the
    online scores equal the trained model's."""
    job_yaml = _write_job(tmp_path, iv=False)
    summary, trained, online = run_served(tmp_path, job_yaml, MODEL_ID, plugins=["tests.algorithms.fed_linear"])
    assert summary["auc"] > 0.95, summary
    np.testing.assert_allclose(online["score"], trained["score"], rtol=0, atol=1e-9)

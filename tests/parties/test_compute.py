"""A party's compute engine: the local pool by default, or its own Dask cluster (real
`dask scheduler` and `dask worker` processes over TLS) behind the same executor."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.parties import service_kit as kit
from vfl.crypto import generate_keypair
from vfl.errors import ConfigError
from vfl.parties.compute import DaskExecutor, connect
from vfl.parties.config import ComputeConfig, PartyConfig, load_party_config
from vfl.parties.executor import shared_process_pool


def test_the_local_pool_is_the_default_and_dask_needs_a_tls_scheduler(tmp_path):
    assert PartyConfig(name="bank").compute.engine == "local"
    assert connect(ComputeConfig(), None, "bank").executor is shared_process_pool()
    fed = kit.Federation(tmp_path, ["bank"])
    for compute, field in (({"engine": "dask"}, "compute"),
                           ({"engine": "dask", "scheduler": "tcp://127.0.0.1:8786"}, "compute"),
                           ({"engine": "local", "scheduler": "tls://127.0.0.1:8786"}, "compute"),
                           ({"engine": "spark"}, "compute.engine")):
        path = fed.write_config("bank", compute=compute)
        with pytest.raises(ConfigError, match=rf"party.yaml: {field}"):
            load_party_config(path)


def test_serve_stops_at_start_naming_an_unreachable_scheduler(tmp_path):
    fed = kit.Federation(tmp_path, ["bank"])
    address = f"tls://127.0.0.1:{kit.free_port()}"  # nothing listens there
    config = fed.write_config("bank", compute={"engine": "dask", "scheduler": address,
                                               "connect_timeout": 2})
    done = subprocess.run([sys.executable, "-m", "vfl.cli", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(kit.REPO)))
    assert done.returncode != 0
    assert f"cannot reach its Dask scheduler at {address}" in done.stderr, done.stderr
    assert "serving on" not in done.stderr  # it never listened: no job could have started


def test_health_reports_the_cluster_and_the_start_log_its_dashboard(tmp_path, dask_cluster):
    fed = kit.Federation(tmp_path, ["bank"])
    config = fed.write_config("bank", compute=dask_cluster.compute_section())
    served = kit.Served(config, fed.ports["bank"], tmp_path / "bank.log")
    try:
        done = subprocess.run([sys.executable, "-m", "vfl.cli", "health", "--config", str(config)],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, PYTHONPATH=str(kit.REPO)))
    finally:
        served.stop()
    assert done.returncode == 0, done.stderr
    compute = json.loads(done.stdout)["compute"]
    assert compute["engine"] == "dask" and compute["scheduler"] == dask_cluster.address
    assert compute["workers"] == 2 and compute["threads"] == 2
    assert compute["dashboard"].startswith("http://127.0.0.1:")
    assert f"computes on Dask at {dask_cluster.address} (2 workers, 2 threads; dashboard " \
           f"{compute['dashboard']})" in served.log()


def test_paillier_kernels_give_the_local_results_on_the_cluster(dask_cluster):
    compute = connect(ComputeConfig(**dask_cluster.compute_section()), None, "bank")
    try:
        executor = compute.executor
        assert isinstance(executor, DaskExecutor) and executor._max_workers == 2
        pub, priv = generate_keypair(1024)
        rng = np.random.default_rng(7)
        d, X, W = rng.normal(size=600), rng.normal(size=(600, 4)), rng.normal(size=(3, 2))
        enc = pub.encrypt(d, executor=executor)
        grad = pub.matmul(X.T, enc, executor=executor)  # X^T [[d]]: columns over the workers
        masked, mask = grad.blind(stat_bits=40, executor=executor)
        plain = mask.unblind(priv.decrypt_encoded(masked, executor))
        np.testing.assert_allclose(plain, X.T @ d, rtol=0, atol=1e-6)
        rows = pub.encrypt(rng.normal(size=(400, 3)), executor=executor)
        local = pub.cipher_matmul(rows, W, executor=shared_process_pool())
        remote = pub.cipher_matmul(rows, W, executor=executor)  # [[A]] W: W sent once, shared
        assert priv.decrypt_encoded(remote).ints.tolist() == priv.decrypt_encoded(local).ints.tolist()
        done, submitted = compute.tasks() or (0, 0)
        assert done == submitted and done >= 8
    finally:
        compute.close()

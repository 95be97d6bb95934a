"""The partner's id table never gathers in its `vfl serve` on a Dask engine: PSI of a
2,000,000-id Parquet directory against a 200,000-id bank keeps the service's peak RSS growth
under 150 MB (measured as in tests/support/rss_probe.py, on the served process).

`VFL_TEST_PSI_PARTNER_IDS` runs it at another size (the bank has a tenth as many ids);
benchmarks/bench_scale_memory.py runs `psi_memory` at 10,000,000 ids."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.parties import service_kit as kit
from tests.psi.psi_kit import aligned_digest
from tests.support.rss_probe import peak_rss, reset_peak
from vfl.parties.federation import connect_federation
from vfl.psi import align, ecdh

PARTNER_IDS = int(os.environ.get("VFL_TEST_PSI_PARTNER_IDS", 2_000_000))
BANK_IDS = PARTNER_IDS // 10
PARTS = 20
LIMIT = 150 * 2**20
ROLES = {"bank": "guest", "partner": "host"}


def _parquet_dir(folder, ids: np.ndarray, parts: int) -> str:
    folder.mkdir()
    for k, chunk in enumerate(np.array_split(ids, parts)):
        pd.DataFrame({"cid": chunk, "x": np.float64(1)}).to_parquet(
            folder / f"part-{k:03d}.parquet")
    return str(folder)


def _psi(federation, job_id: str, dataset: str, bank: pd.DataFrame):
    with federation.job(job_id, "test-psi", {"dataset": dataset, "chunk": 8192}, ROLES,
                        {"partner": [dataset]}) as ctx:
        result = ecdh.guest(ctx.child("psi"), bank)
        digest = ctx.recv("partner", "digest")
    assert federation.wait_job("partner", job_id, 60).state == "succeeded"
    return result, digest


@dataclass
class PsiRun:
    """One PSI of a partner Parquet directory against a bank, measured on the partner's service."""

    common: int  # size of the intersection
    aligned_right: bool  # the bank's aligned ids are exactly the common ones, in id order
    digests_agree: bool  # the partner aligned the same rows
    on_dask: bool  # the partner's service logged its Dask engine
    seconds: float
    growth: int  # the partner service's peak RSS growth during the PSI (bytes)


def psi_memory(folder: Path, cluster: Any, partner_ids: int, bank_ids: int) -> PsiRun:
    """PSI of `partner_ids` ids in Parquet part files (on `cluster`) against `bank_ids` ids,
    half of them in common, between two `vfl serve` processes with mutual TLS."""
    rng = np.random.default_rng(7)
    ids = rng.permutation(partner_ids)  # ids in no particular order across the files
    common = range(partner_ids - bank_ids // 2, partner_ids)
    bank = pd.DataFrame({"cid": np.arange(common.start, partner_ids + bank_ids // 2)})
    fed = kit.Federation(folder, ["bank", "partner"])
    big = _parquet_dir(folder / "partner-ids", ids, PARTS)
    del ids
    warm = _parquet_dir(folder / "warm-ids", np.arange(2_000), 2)
    fed.write_config("bank", compute={"engine": "local"})
    fed.write_config("partner", plugins=["tests.psi.psi_kit"], compute=cluster.compute_section(),
                     datasets={"ids": {"uri": big, "id_column": "cid"},
                               "warm": {"uri": warm, "id_column": "cid"}})
    served = kit.Served(fed.root / "partner" / "party.yaml", fed.ports["partner"],
                        fed.root / "partner.log")
    try:
        with connect_federation(fed.config("bank")) as federation:
            # the first job maps in the code of Parquet, the Dask client's comms and PSI
            _psi(federation, "psi-warm", "warm", pd.DataFrame({"cid": np.arange(1_000, 3_000)}))
            base = reset_peak(served.proc.pid)
            start = time.perf_counter()
            result, digest = _psi(federation, "psi-big", "ids", bank)
            seconds = time.perf_counter() - start
            growth = peak_rss(served.proc.pid) - base
    finally:
        served.stop()
    aligned = align(bank, result)["cid"].tolist()
    return PsiRun(int(result.size), aligned == list(common), digest == aligned_digest(aligned),
                  "computes on Dask" in served.log(), seconds, growth)


def test_psi_of_a_partner_parquet_directory_keeps_its_service_memory_flat(tmp_path,
                                                                            dask_cluster):
    run = psi_memory(tmp_path, dask_cluster, PARTNER_IDS, BANK_IDS)
    assert run.common == BANK_IDS // 2
    assert run.aligned_right
    assert run.digests_agree
    assert run.on_dask
    assert run.growth < LIMIT, f"the partner's service grew by {run.growth / 2**20:.0f} MB"

"""ECDH-PSI with each party's hashing and scalar multiplications on its own Dask cluster (real
TLS scheduler and workers): the same rows as on the local pool, bit for bit, between a
`vfl serve` partner and the bank over mutual TLS, also when the partner's ids are a MariaDB
table or an HDFS directory read partition by partition on its workers; and the same result
when a worker dies."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pymysql
import pytest

from tests.parties import service_kit as kit
from tests.psi.psi_kit import aligned_digest
from tests.psi.test_partitioned import stored_ids
from tests.support.dask_cluster import dask_cluster
from vfl.parties.federation import connect_federation
from vfl.psi import align, ecdh

ROLES = {"bank": "guest", "partner": "host"}


def _federation(tmp_path, partner_ids: list[int]) -> kit.Federation:
    fed = kit.Federation(tmp_path, ["bank", "partner"])
    pd.DataFrame({"cid": partner_ids, "x": 1}).to_parquet(tmp_path / "partner.parquet")
    return fed


def _run_psi(fed: kit.Federation, job_id: str, bank: pd.DataFrame, bank_compute: dict,
             partner_compute: dict, chunk: int, during=None, uri: str | None = None):
    """Serve the partner (its ids: `uri`, by default partner.parquet), run the bank's guest
    role here; returns (result, digest, partner log)."""
    fed.write_config("bank", compute=bank_compute)
    fed.write_config("partner", plugins=["tests.psi.psi_kit"], compute=partner_compute,
                     datasets={"ids": {"uri": uri or str(fed.root / "partner.parquet"),
                                       "id_column": "cid"}})
    served = kit.Served(fed.root / "partner" / "party.yaml", fed.ports["partner"],
                        fed.root / f"partner-{job_id}.log")
    try:
        with connect_federation(fed.config("bank")) as federation:
            watcher = None
            if during is not None:
                watcher = threading.Thread(target=during, args=(federation, job_id), daemon=True)
            with federation.job(job_id, "test-psi", {"dataset": "ids", "chunk": chunk}, ROLES,
                                {"partner": ["ids"]}) as ctx:
                if watcher is not None:
                    watcher.start()
                result = ecdh.guest(ctx.child("psi"), bank, chunk_size=chunk)
                digest = ctx.recv("partner", "digest")
            assert federation.wait_job("partner", job_id, 60).state == "succeeded"
            if watcher is not None:
                watcher.join(30)
    finally:
        served.stop()
    return result, digest, served.log()


def test_psi_on_dask_gives_the_local_rows_bit_for_bit(tmp_path):
    partner_ids = list(range(30_000, 0, -1))
    bank = pd.DataFrame({"cid": np.arange(20_000, 45_000)})  # 10,001 in common
    fed = _federation(tmp_path, partner_ids)
    local, local_digest, _ = _run_psi(fed, "psi-local", bank, {"engine": "local"},
                                      {"engine": "local"}, 1024)
    with dask_cluster(tmp_path / "bank-dask") as bank_cluster, \
            dask_cluster(tmp_path / "partner-dask") as partner_cluster:
        remote, remote_digest, log = _run_psi(fed, "psi-dask", bank, bank_cluster.compute_section(),
                                              partner_cluster.compute_section(), 1024)
    assert "computes on Dask" in log
    assert remote.size == local.size == 10_001
    assert remote.rows is not None and local.rows is not None
    assert remote.rows.tobytes() == local.rows.tobytes()  # the same positions, same order
    assert remote_digest == local_digest == aligned_digest(align(bank, local)["cid"].tolist())


class _Reads:
    """The reads of the partner's table a run makes: the SELECTs MariaDB logs (its general
    log, switched on by root for the run) or the HDFS OPENs of each part file."""

    def __init__(self, request, store: str, uri: str) -> None:
        self.request, self.store, self.uri = request, store, uri

    def __enter__(self) -> _Reads:
        if self.store == "mariadb":
            self._root("SET GLOBAL log_output = 'TABLE'", "TRUNCATE mysql.general_log",
                       "SET GLOBAL general_log = 'ON'")
        else:
            self.start = len(self.request.getfixturevalue("webhdfs").requests)
        return self

    def __exit__(self, *exc) -> None:
        if self.store == "mariadb":
            table = parse_qs(urlsplit(self.uri).query)["table"][0]
            logged = self._root("SET GLOBAL general_log = 'OFF'",
                                "SELECT argument FROM mysql.general_log")
            statements = [" ".join((a.decode() if isinstance(a, bytes) else a).split())
                          for (a,) in logged]
            self.selects = [s for s in statements if s.startswith("SELECT")
                            and f"FROM {table}" in s and "ORDER BY" in s]
        else:
            self.opens = [path for node, op, path, _ in
                          self.request.getfixturevalue("webhdfs").requests[self.start:]
                          if node == "namenode" and op == "OPEN"]

    def _root(self, *statements: str) -> list[tuple]:
        server = self.request.getfixturevalue("mariadb_server")
        conn = pymysql.connect(unix_socket=server.socket, user="root", password="")
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()


@pytest.mark.parametrize("store", ["mariadb", "hdfs"])
def test_psi_on_dask_reads_sql_ranges_and_hdfs_files_partition_by_partition(tmp_path, request,
                                                                            store, dask_cluster):
    """The partner's ids: a MariaDB table with a partition column (4 ranges) or an HDFS
    directory (4 Parquet files). On Dask, its workers read them one partition at a time; the
    rows are the local engine's (which reads the table whole), bit for bit."""
    partner_ids = np.random.default_rng(11).permutation(np.arange(1, 12_001))
    bank = pd.DataFrame({"cid": np.arange(8_000, 20_000)})  # 4,001 in common
    fed = _federation(tmp_path, [])
    uri = stored_ids(request, store, partner_ids, 4)
    with _Reads(request, store, uri) as whole:
        local, local_digest, _ = _run_psi(fed, "psi-local", bank, {"engine": "local"},
                                          {"engine": "local"}, 1024, uri=uri)
    with _Reads(request, store, uri) as parts:
        remote, remote_digest, log = _run_psi(fed, "psi-dask", bank, {"engine": "local"},
                                              dask_cluster.compute_section(), 1024, uri=uri)
    assert "computes on Dask" in log
    assert remote.size == local.size == 4_001
    assert remote.rows is not None and local.rows is not None
    assert remote.rows.tobytes() == local.rows.tobytes()
    assert remote_digest == local_digest == aligned_digest(align(bank, local)["cid"].tolist())
    if store == "mariadb":  # the whole table once; then each range, never the whole table
        assert len(whole.selects) == 1 and " WHERE " not in whole.selects[0]
        ranges = {s.split(" WHERE ")[1] for s in parts.selects if " WHERE " in s}
        assert len(ranges) == 4 and len(ranges) < len(parts.selects)
        assert all(" WHERE " in s for s in parts.selects), parts.selects
    else:  # each file read once for the whole table; then by each task of its partition
        for k in range(4):
            once, per_task = (sum(p.endswith(f"/part-{k:05d}.parquet") for p in run.opens)
                              for run in (whole, parts))
            assert 0 < once < per_task


def test_psi_completes_with_the_same_rows_when_a_worker_is_killed_mid_way(tmp_path, dask_cluster):
    partner_ids = list(range(60_000, 0, -1))
    bank = pd.DataFrame({"cid": np.arange(50_001, 70_001)})  # 50,001 .. 60,000 in common
    fed = _federation(tmp_path, partner_ids)
    seen: list[str] = []

    def kill_when_busy(federation, job_id: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            progress = federation.job_status("partner", job_id).progress
            done = re.search(r"cluster: (\d+)/(\d+) tasks", progress)
            if done and int(done[1]) >= 10:
                seen.append(progress)
                dask_cluster.kill_worker(0)
                return
            time.sleep(0.05)

    result, digest, log = _run_psi(fed, "psi-kill", bank, {"engine": "local"},
                                   dask_cluster.compute_section(), 256, during=kill_when_busy)
    assert seen, f"the partner's cluster never reported tasks:\n{log}"
    points = re.search(r"psi/partner: (\d+)/(\d+) points", seen[0])
    assert points and int(points[1]) < int(points[2]), seen[0]  # killed before PSI was done
    assert dask_cluster.workers[0].poll() is not None  # the worker is gone for good
    assert result.size == 10_000
    aligned = align(bank, result)["cid"].tolist()
    assert sorted(aligned) == list(range(50_001, 60_001))
    assert digest == aligned_digest(aligned)  # the partner aligned the same rows

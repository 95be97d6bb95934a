"""Scoring from feature tables kept on each party's Dask workers (`vfl.serving.partitioned`).

A bank and a partner train HE logistic regression (1024-bit keys, a few hundred rows), then
serve it from Parquet directories with ``compute: {engine: dask}`` on a real TLS scheduler and
2 one-thread workers:

- the partitioned source answers exactly as the table loaded in memory (found flags, rows,
  dtypes), also after a worker holding its buckets is SIGKILLed; it refuses an id in two part
  files and skips an empty part file;
- `vfl score` and online scores are bit-identical to the local engine's, across two `vfl
  serve` processes with mutual TLS;
- batch scoring of 2,000,000 rows keeps the peak RSS growth of both coordinators (the bank's
  `vfl score` process and the partner's `vfl serve`) under 150 MB.

`VFL_TEST_SCORE_ROWS` runs the memory test at another size; benchmarks/bench_scale_memory.py
runs `score_memory` at 10,000,000 rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.parties import service_kit as kit
from tests.serving.credit import GUEST_FEATURES, HOST_FEATURES, MODEL, credit_tables, preprocessing
from vfl.config import JobConfig
from vfl.connectors import DatasetSpec, read_table, write_table
from vfl.crypto.tls import TlsFiles, issue_party_cert
from vfl.errors import DataError
from vfl.parties.compute import connect
from vfl.parties.config import ComputeConfig, load_party_config
from vfl.runner import run_simulated
from vfl.serving.client import ScoringClient
from vfl.serving.features import IndexedTableSource
from vfl.serving.online import batch_score
from vfl.serving.partitioned import PartitionedTableSource, bucket_of
from vfl.serving.sources import source_for

SCORE_ROWS = int(os.environ.get("VFL_TEST_SCORE_ROWS", 2_000_000))
LIMIT = 150 * 2**20
REPO = Path(__file__).resolve().parents[2]


def parquet_dir(folder: Path, frame: pd.DataFrame, parts: int) -> str:
    folder.mkdir(parents=True)
    for k, part in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[part].to_parquet(folder / f"part-{k:03d}.parquet", index=False)
    return str(folder)


@dataclass
class Fed:
    kit: kit.Federation
    root: Path
    app: TlsFiles  # a bank application's certificate

    def configure(self, party: str, uri: str, compute: dict) -> Path:
        """`party`'s config serving the model from `uri` on `compute`."""
        bank = party == "bank"
        self.kit.write_config(
            party, plugins=[], compute=compute,
            datasets={"credit": {"uri": uri, "id_column": "id", "features": GUEST_FEATURES if bank else HOST_FEATURES,
                                 "categorical": ["segment" if bank else "region"],
                                 **({"label": "y"} if bank else {})}},
            preprocessing={"credit": preprocessing(party)},
            serving={"models": {MODEL: {"dataset": "credit"}}, "timeout": 30, "clients": ["app"]})
        return self.root / party / "party.yaml"

    def serve(self, party: str, uri: str, compute: dict) -> kit.Served:
        """`vfl serve` of `party` serving the model from `uri` on `compute`."""
        return kit.Served(self.configure(party, uri, compute), self.kit.ports[party],
                          self.root / f"{party}-serve.log")


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Fed:
    return trained_federation(tmp_path_factory.mktemp("partitioned"))


def trained_federation(root: Path) -> Fed:
    """A bank and a partner under `root` with model `credit` trained and in production on
    both sides (on the local engine, from single Parquet files)."""
    federation = kit.Federation(root, ["bank", "partner"])
    f = Fed(federation, root, issue_party_cert(federation.certs, "app"))
    bank, partner = credit_tables(400)
    write_table(bank, str(root / "bank.parquet"))
    write_table(partner, str(root / "partner.parquet"))
    for party in ("bank", "partner"):
        f.configure(party, str(root / f"{party}.parquet"), {"engine": "local"})
    job = JobConfig.model_validate({
        "guest": "bank", "hosts": ["partner"], "datasets": {"bank": "credit", "partner": "credit"},
        "parties": {p: str(root / p / "party.yaml") for p in ("bank", "partner")},
        "steps": {"psi": {}, "split": {"test_size": 0.25, "seed": 3}, "preprocess": {},
                  "train": {"algorithm": "hetero_lr",
                            "params": {"epochs": 2, "batch_size": 128, "learning_rate": 0.1,
                                       "key_bits": 1024}},
                  "export": {"model_id": MODEL}},
    })
    outcome = run_simulated(job)
    assert outcome.metrics["auc"] > 0.7, outcome.metrics
    return f


def _source(spec: DatasetSpec, compute) -> PartitionedTableSource:
    from vfl.connectors.tables import table_parts

    return PartitionedTableSource(spec, compute.executor, table_parts(spec.uri), "credit")


@pytest.mark.parametrize("store", ["file", "hdfs"])
def test_the_partitioned_source_answers_as_the_table_in_memory(tmp_path, dask_cluster, store, request):
    _, partner = credit_tables(3_000, seed=1)
    if store == "hdfs":  # part files on the loopback WebHDFS, read by the workers through it
        webhdfs = request.getfixturevalue("webhdfs")
        parquet_dir(Path(webhdfs.local("/serving/partner")), partner, 4)
        folder, uri = Path(webhdfs.local("/serving/partner")), f"{webhdfs.url}/serving/partner"
    else:
        folder = Path(parquet_dir(tmp_path / "partner", partner, 4))
        uri = str(folder)
    pd.DataFrame({c: pd.Series([], dtype=partner[c].dtype) for c in partner.columns}).to_parquet(
        folder / "part-999.parquet", index=False)  # an empty part file, as Spark writes
    spec = DatasetSpec.model_validate({"uri": uri, "id_column": "id", "features": HOST_FEATURES,
                                      "categorical": ["region"]})
    compute = connect(ComputeConfig.model_validate(dask_cluster.compute_section()), None, "partner")
    try:
        source = source_for(spec, compute=compute)
        assert isinstance(source, PartitionedTableSource)
        memory = IndexedTableSource(spec)
        asked = pd.Series(np.r_[partner["id"].to_numpy()[::7], [1, 2, 10_000 + 3_000]], dtype=np.int64)
        got, want = source.lookup(asked), memory.lookup(asked)
        np.testing.assert_array_equal(got.found, want.found)
        assert not got.found[-3:].any()  # unknown ids are reported, not made up
        pd.testing.assert_frame_equal(got.X, want.X)  # same rows, order and dtypes
        # ids as strings are conformed to the integer id column, as in memory
        as_text = source.lookup(asked.astype(str).astype(object))
        np.testing.assert_array_equal(as_text.found, want.found)
        nothing = source.lookup(pd.Series([1, 2]))
        assert not nothing.found.any() and nothing.X.empty
        dask_cluster.kill_worker(0)  # its buckets are computed again from their part files
        again = source.lookup(asked)
        np.testing.assert_array_equal(again.found, want.found)
        pd.testing.assert_frame_equal(again.X, want.X)
    finally:
        compute.close()


def test_an_id_in_two_part_files_is_refused_naming_it(tmp_path, dask_cluster):
    _, partner = credit_tables(200, seed=2)
    folder = parquet_dir(tmp_path / "partner", pd.concat([partner, partner.iloc[[5]]]), 2)
    spec = DatasetSpec.model_validate({"uri": folder, "id_column": "id", "features": HOST_FEATURES,
                                      "categorical": ["region"]})
    compute = connect(ComputeConfig.model_validate(dask_cluster.compute_section()), None, "partner")
    try:
        with pytest.raises(DataError, match=rf"'credit'.*appear in more than one part file.*{partner['id'][5]}"):
            _source(spec, compute).prepare()
        kept = DatasetSpec.model_validate({**spec.model_dump(), "duplicates": "keep_first"})
        found = _source(kept, compute).lookup(pd.Series([partner["id"][5]]))
        assert found.found.all() and found.X["h0"].iat[0] == partner["h0"][5]
    finally:
        compute.close()


def test_scores_on_dask_are_bit_identical_to_the_local_engine(fed, tmp_path, dask_cluster):
    bank, partner = credit_tables(400)
    source = str(tmp_path / "ids.parquet")
    write_table(bank[["id"]].sample(frac=1.0, random_state=4), source)
    local = fed.serve("partner", str(fed.root / "partner.parquet"), {"engine": "local"})
    try:
        bank_config = fed.configure("bank", str(fed.root / "bank.parquet"), {"engine": "local"})
        expected = _batch(bank_config, source, tmp_path / "local.parquet")
    finally:
        local.stop()
    dask = dask_cluster.compute_section()
    folders = {p: parquet_dir(tmp_path / p, t, 3) for p, t in (("bank", bank), ("partner", partner))}
    served = [fed.serve("partner", folders["partner"], dask)]
    try:
        served.append(fed.serve("bank", folders["bank"], dask))
        got = _batch(bank_config, source, tmp_path / "dask.parquet")
        pd.testing.assert_frame_equal(got.drop(columns="scored_at"), expected.drop(columns="scored_at"))
        assert got["score"].notna().sum() == len(partner)  # the partner's gaps stay unscored
        ids = expected["id"].head(50).tolist()
        online = ScoringClient(f"127.0.0.1:{fed.kit.ports['bank']}", "bank", fed.app, 30).score(MODEL, ids)
        np.testing.assert_array_equal(online["score"].to_numpy(), expected["score"].head(50).to_numpy())
        assert "partitioning" in served[0].log()  # the partner's table went to its workers
    finally:
        for proc in served:
            proc.stop()


def _batch(config: Path, source: str, sink: Path) -> pd.DataFrame:
    batch_score(load_party_config(config), MODEL, source, str(sink))
    return read_table(str(sink))


def score_memory(fed: Fed, folder: Path, cluster, rows: int) -> dict:
    """Batch scoring of `rows` bank ids with the bank's and the partner's tables in Parquet
    part files on `cluster`: the bank scores with `vfl score`'s `batch_score` in a fresh
    process, the partner answers from its `vfl serve`; both peak RSS growths are measured
    (tests/serving/score_probe.py). Returns the probe's JSON plus the scores' checks."""
    bank, partner = credit_tables(rows, seed=5)
    dask = cluster.compute_section()
    bank_dir = parquet_dir(folder / "bank", bank, 20)
    partner_dir = parquet_dir(folder / "partner", partner, 20)
    ids = parquet_dir(folder / "ids", bank[["id"]], 20)
    warm = parquet_dir(folder / "warm", bank[["id"]].head(2_000), 2)
    del bank, partner
    served = fed.serve("partner", partner_dir, dask)
    try:
        bank_config = fed.configure("bank", bank_dir, dask)  # the bank scores with `vfl score`
        probe = subprocess.run(
            [sys.executable, "-m", "tests.serving.score_probe", str(bank_config), MODEL, warm, ids,
             str(folder / "scores.parquet"), str(served.proc.pid)],
            capture_output=True, text=True, timeout=3600, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert probe.returncode == 0, probe.stderr[-3000:]
        result = json.loads(probe.stdout.strip().splitlines()[-1])
    finally:
        served.stop()
    scores = read_table(str(folder / "scores.parquet"), columns=["score", "missing"])
    result["sink_rows"] = len(scores)
    result["scored_in_sink"] = int(scores["score"].notna().sum())
    result["unscored_all_partner"] = bool((scores.loc[scores["score"].isna(), "missing"] == "partner").all())
    return result


def test_batch_scoring_of_two_million_rows_keeps_both_coordinators_flat(fed, tmp_path, dask_cluster):
    result = score_memory(fed, tmp_path, dask_cluster, SCORE_ROWS)
    print("score probe:", json.dumps(result))
    assert result["sink_rows"] == result["rows"] == SCORE_ROWS
    assert result["scored_in_sink"] == SCORE_ROWS - SCORE_ROWS // 10
    assert result["unscored_all_partner"]
    assert result["growth"] < LIMIT, f"the bank's batch process grew by {result['growth'] / 2**20:.0f} MB"
    assert result["host_growth"] < LIMIT, f"the partner's service grew by {result['host_growth'] / 2**20:.0f} MB"


def test_integer_ids_fall_in_the_same_bucket_whatever_their_width():
    stored = pd.Series([-1, 5, 2**31 - 1, -(2**31)], dtype=np.int32)  # a Parquet int32 column
    asked = pd.Series([-1, 5, 2**31 - 1, -(2**31)], dtype=np.int64)  # ids as requests carry them
    np.testing.assert_array_equal(bucket_of(stored, 7), bucket_of(asked, 7))

"""PSI with a party's ids left where they are stored (`vfl.psi.partitioned`): each file of a
Parquet directory (local or on HDFS), or each range of a SQL table's partition column, read by
tasks of the party's executor (here its local process pool); the same rows, bit for bit, as
the same ids in memory; duplicates across files found."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pandas as pd
import pytest

from vfl.connectors import read_table, write_table
from vfl.connectors.tables import table_parts
from vfl.errors import DataError
from vfl.parties import simulate
from vfl.psi import align, ecdh
from vfl.psi.partitioned import IdTable, _shuffled

ROLES = {"bank": "guest", "partner": "host"}


def _directory(folder, ids: np.ndarray, parts: int) -> IdTable:
    folder.mkdir()
    for k, chunk in enumerate(np.array_split(ids, parts)):
        pd.DataFrame({"cid": chunk, "x": 1.0}).to_parquet(folder / f"part-{k}.parquet")
    return IdTable(table_parts(str(folder)) or [], ["cid"], {}, "error", "dataset 'ids'")


def _psi(bank: pd.DataFrame, partner) -> dict:
    return simulate({"bank": (ecdh.guest, {"ids": bank, "chunk_size": 300}),
                     "partner": (ecdh.host, {"ids": partner, "chunk_size": 256})}, ROLES)


def test_ids_read_per_partition_give_the_in_memory_rows_bit_for_bit(tmp_path):
    ids = np.random.default_rng(3).permutation(6_000)
    table = _directory(tmp_path / "ids", ids, 3)
    bank = pd.DataFrame({"cid": np.arange(3_000, 7_000)})
    partitioned = _psi(bank, table)
    in_memory = _psi(bank, pd.DataFrame({"cid": ids}))
    for party in ROLES:
        assert partitioned[party].rows.tobytes() == in_memory[party].rows.tobytes()
        assert partitioned[party].size == 3_000
    assert align(table, partitioned["partner"])["cid"].tolist() == list(range(3_000, 6_000))


def stored_ids(request, store: str, ids: np.ndarray, parts: int) -> str:
    """`ids` (with a column x) as a MariaDB table split by a row-number column into `parts`
    ranges (rows inserted shuffled: the table's order is the row numbers'), or as an HDFS
    directory of `parts` Parquet files; the URI of the table."""
    name = f"ids_{uuid.uuid4().hex[:8]}"
    frame = pd.DataFrame({"k": np.arange(len(ids)), "cid": ids, "x": 1.0})
    if store == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        shuffled = frame.sample(frac=1.0, random_state=4)
        write_table(shuffled, f"{url}?table={name}")
        return f"{url}?table={name}&partition_column=k&partitions={parts}"
    webhdfs = request.getfixturevalue("webhdfs")
    from hdfs import InsecureClient

    client = InsecureClient(f"http://127.0.0.1:{webhdfs.port}", user="loader")
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        buffer = io.BytesIO()
        frame.iloc[rows].to_parquet(buffer, index=False)
        client.write(f"/{name}/part-{k:05d}.parquet", data=buffer.getvalue())
    return f"{webhdfs.url}/{name}?user=loader"


@pytest.mark.parametrize("store", ["mariadb", "hdfs"])
def test_ids_of_sql_ranges_and_hdfs_files_give_the_in_memory_rows_bit_for_bit(request, store):
    ids = np.random.default_rng(5).permutation(4_000)
    uri = stored_ids(request, store, ids, 3)
    parts = table_parts(uri)
    assert parts is not None and len(parts) == 3
    table = IdTable(parts, ["cid"], {}, "error", "dataset 'ids'")
    whole = read_table(uri, columns=["cid"])
    assert whole["cid"].tolist() == ids.tolist()  # the stored order
    bank = pd.DataFrame({"cid": np.arange(2_500, 5_000)})
    partitioned, in_memory = _psi(bank, table), _psi(bank, whole)
    for party in ROLES:
        assert partitioned[party].rows.tobytes() == in_memory[party].rows.tobytes()
        assert partitioned[party].size == 1_500
    assert align(table, partitioned["partner"])["cid"].tolist() == list(range(2_500, 4_000))


def test_a_repeated_id_across_files_is_refused_or_dropped_as_the_dataset_says(tmp_path):
    ids = np.concatenate([np.arange(100), [7]])  # row 101 repeats row 8, in another file
    table = _directory(tmp_path / "ids", ids, 3)
    bank = pd.DataFrame({"cid": np.arange(50)})
    with pytest.raises(DataError, match=r"dataset 'ids'.*1 duplicate id row.*row 101 \(as row 8\)"):
        _psi(bank, table)
    kept = IdTable(table.parts, table.columns, table.types, "keep_first", table.where)
    out = _psi(bank, kept)
    assert out["partner"].own_size == 100 and out["partner"].size == 50
    assert 100 not in out["partner"].rows.tolist()  # the repeat's row (from 0) is not used


def test_an_id_repeated_in_files_of_different_integer_widths_is_found(tmp_path):
    folder = tmp_path / "ids"
    folder.mkdir()  # one writer stored int64, another int32: -3 is the same customer in both
    pd.DataFrame({"cid": np.array([-3, 1, 2], dtype=np.int64)}).to_parquet(folder / "part-0.parquet")
    pd.DataFrame({"cid": np.array([4, -3], dtype=np.int32)}).to_parquet(folder / "part-1.parquet")
    table = IdTable(table_parts(str(folder)) or [], ["cid"], {}, "error", "dataset 'ids'")
    with pytest.raises(DataError, match=r"1 duplicate id row.*row 5 \(as row 1\)"):
        _psi(pd.DataFrame({"cid": [-3, 4]}), table)


def test_a_partition_shuffle_is_a_permutation_drawn_from_its_seed():
    rows = np.arange(1_000)
    first, again, other = (_shuffled(rows, seed) for seed in (b"a" * 32, b"a" * 32, b"b" * 32))
    assert sorted(first.tolist()) == rows.tolist()
    assert first.tolist() == again.tolist() and first.tolist() != other.tolist()

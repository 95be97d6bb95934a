"""PSI with a party's ids left where they are stored (`vfl.psi.partitioned`): each file of a
Parquet directory read by tasks of the party's executor (here its local process pool); the
same rows, bit for bit, as the same ids in memory; duplicates across files found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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


def test_a_partition_shuffle_is_a_permutation_drawn_from_its_seed():
    rows = np.arange(1_000)
    first, again, other = (_shuffled(rows, seed) for seed in (b"a" * 32, b"a" * 32, b"b" * 32))
    assert sorted(first.tolist()) == rows.tolist()
    assert first.tolist() == again.tolist() and first.tolist() != other.tolist()

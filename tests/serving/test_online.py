"""The guest's servable model and batch scoring, with the partner's real `vfl serve` process:
the version check at load, chunks, retries, all-or-nothing sinks (SQL and file), reruns and
the summary.
"""

from __future__ import annotations

import shutil
import signal
import threading

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.serving.conftest import HOST_TIMEOUT, MODEL, N_ROWS, check_batch_scores
from vfl.connectors import read_table, write_table
from vfl.errors import DataError, PeerTimeoutError
from vfl.serving.batch import BatchSummary
from vfl.serving.client import GrpcHost
from vfl.serving.online import batch_score, load_guest_model
from vfl.store.models import ModelStore

CHUNK = 64


def _store(trained) -> ModelStore:
    return ModelStore("bank", trained.fed.config("bank").store.path)


def test_loading_refuses_a_host_that_serves_another_version(trained):
    store = _store(trained)
    served = store.get(MODEL)
    files = store.open(served)
    store.save(MODEL, "other-run", role="guest", kind=served.kind, peers=served.peers,
               write=lambda d: shutil.copytree(files, d, dirs_exist_ok=True))
    config = trained.fed.config("bank")
    try:
        with pytest.raises(DataError, match=f"'bank' serves version 'other-run' but host 'partner' "
                                            f"serves version '{trained.job_id}'"):
            load_guest_model(config, store, MODEL, version="other-run")
        host = GrpcHost(config, "partner", MODEL, "other-run")  # and the host refuses it too
        with pytest.raises(DataError, match=f"asks for version 'other-run' but 'partner' serves "
                                            f"version '{trained.job_id}'"):
            host.partials(trained.expected["id"].head(2))
        host.close()
        model = load_guest_model(config, store, MODEL)  # the matching version loads
        assert model.version == trained.job_id
        model.close()
    finally:
        store.delete(MODEL, "other-run")


# vfl.connectors.files.FileTableWriter.abort drops an unclosed ParquetWriter, whose __del__ then
# writes to the discarded file (a warning at garbage collection; the sink itself is correct).


@pytest.fixture(params=["sqlite", "mariadb", "parquet"])
def sink(request, trained):
    if request.param == "sqlite":
        return f"sqlite:///{trained.root / 'scores.db'}?table=scores"
    if request.param == "mariadb":
        return f"{request.getfixturevalue('mariadb_url')}?table=scores"
    return str(trained.root / "scores.parquet")


def test_batch_scores_equal_the_trained_estimator_and_a_rerun_replaces_the_sink(trained, sink):
    config = trained.fed.config("bank")
    source = str(trained.root / "bank.csv")  # ids and the bank's own features
    progress: list[int] = []
    summary = batch_score(config, MODEL, source, sink, chunk_rows=CHUNK,
                          on_progress=lambda n, s: progress.append(s.rows))
    n_absent = len(trained.host_absent)
    assert (summary.rows, summary.scored, summary.missing) == (N_ROWS, N_ROWS - n_absent, {"partner": n_absent})
    assert summary.chunks == -(-N_ROWS // CHUNK) and summary.retries == 0
    assert progress == [min(N_ROWS, CHUNK * (i + 1)) for i in range(summary.chunks)]
    assert 0 < summary.seconds and summary.rows_per_second > 0
    first = read_table(sink)
    check_batch_scores(trained, first)

    again = batch_score(config, MODEL, source, sink, chunk_rows=CHUNK)
    assert again.rows == N_ROWS
    second = read_table(sink)
    check_batch_scores(trained, second)  # replaced, not appended: every id once

    # a job that fails half-way leaves the previous sink untouched (and no staging table)
    def hang_partner(chunks: int, _: BatchSummary) -> None:
        if chunks == 2:
            trained.partner.proc.send_signal(signal.SIGSTOP)

    try:
        with pytest.raises(PeerTimeoutError, match="partner"):
            batch_score(config, MODEL, source, sink, chunk_rows=CHUNK, retries=0, on_progress=hang_partner)
    finally:
        trained.partner.proc.send_signal(signal.SIGCONT)
    after = read_table(sink)
    pd.testing.assert_frame_equal(after.sort_values("id").reset_index(drop=True),
                                  second.sort_values("id").reset_index(drop=True))
    if "://" in sink:
        engine = sa.create_engine(sink.partition("?")[0])
        assert not [t for t in sa.inspect(engine).get_table_names() if "staging" in t]
        engine.dispose()
    else:
        assert [p.name for p in trained.root.glob("scores.parquet*")] == ["scores.parquet"]


def test_batch_of_ids_alone_reads_the_bank_features_from_its_source(trained):
    ids = pd.DataFrame({"id": [*trained.expected["id"].head(10), 99_999_999]})
    write_table(ids, str(trained.root / "ids.parquet"))
    sink = str(trained.root / "ids_scores.csv")
    summary = batch_score(trained.fed.config("bank"), MODEL, str(trained.root / "ids.parquet"), sink)
    assert (summary.rows, summary.scored, summary.missing) == (11, 10, {"guest": 1, "partner": 1})
    table = read_table(sink)
    np.testing.assert_allclose(table["score"].head(10), trained.expected["score"].head(10), rtol=0, atol=1e-9)
    assert table["missing"].iloc[-1] == "guest,partner"


def test_a_failed_chunk_is_retried(trained):
    """The partner hangs after the first chunk and comes back: the chunk is retried, nothing lost."""
    resumed = threading.Event()

    def hang_partner_for_a_while(chunks: int, _: BatchSummary) -> None:
        if chunks == 1:
            trained.partner.proc.send_signal(signal.SIGSTOP)

            def resume() -> None:
                trained.partner.proc.send_signal(signal.SIGCONT)
                resumed.set()

            threading.Timer(HOST_TIMEOUT + 0.3, resume).start()

    sink = str(trained.root / "retried.parquet")
    try:
        summary = batch_score(trained.fed.config("bank"), MODEL, str(trained.root / "bank.csv"), sink,
                              chunk_rows=CHUNK, retries=4, retry_delay=0.5,
                              on_progress=hang_partner_for_a_while)
    finally:
        resumed.wait(10)
        trained.partner.proc.send_signal(signal.SIGCONT)
    assert summary.retries >= 1 and summary.rows == N_ROWS
    check_batch_scores(trained, read_table(sink))

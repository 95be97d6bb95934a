"""`vfl models` (list/show/promote/rollback/delete on a party's store, seen by its running
service) and `vfl score` (batch scoring through the partner's service)."""

from __future__ import annotations

import json
import re
import shutil
import time

import numpy as np

from tests.serving.conftest import MODEL, N_ROWS, check_batch_scores
from vfl.cli import main
from vfl.connectors import read_table
from vfl.errors import DataError
from vfl.store.models import ModelStore

RETRAINED = "retrain-2"


def _models(trained, capsys, party: str, *args: str) -> tuple[int, list, str]:
    code = main(["models", "--config", str(trained.config_path(party)), *args, "--json"])
    out, err = capsys.readouterr()
    try:
        records = [json.loads(out)]  # one (possibly indented) object
    except ValueError:
        records = [json.loads(line) for line in out.splitlines()]  # one object per line
    return code, records if out.strip() else [], err


def _score_until(trained, ok: bool, timeout: float = 10.0):
    """Score through the bank's service until it succeeds (ok) or fails (not ok); the service
    re-reads the production version about once a second."""
    deadline = time.monotonic() + timeout
    ids = trained.expected["id"].head(3)
    while True:
        try:
            with trained.scoring_client() as client:
                got = client.score(MODEL, ids)
            if ok:
                return got
        except DataError as exc:
            if not ok:
                return exc
        if time.monotonic() > deadline:
            raise AssertionError(f"the service did not {'recover' if ok else 'refuse'} in {timeout}s")
        time.sleep(0.2)


def test_models_list_show_promote_rollback_delete(trained, capsys):
    store = ModelStore("bank", trained.fed.config("bank").store.path)
    files = store.open(store.get(MODEL))
    store.save(MODEL, RETRAINED, role="guest", kind="hetero_lr", peers=["partner"],
               write=lambda d: shutil.copytree(files, d, dirs_exist_ok=True))

    code, listed, _ = _models(trained, capsys, "bank", "list", MODEL)
    assert code == 0
    assert [(r["version"], r["stage"], r["role"]) for r in listed] == [
        (trained.job_id, "production", "guest"), (RETRAINED, "staged", "guest")]
    assert listed[0]["auc"] > 0.7 and listed[0]["peers"] == ["partner"]
    _, [host_part], _ = _models(trained, capsys, "partner", "list")
    assert (host_part["version"], host_part["role"], host_part["peers"]) == (trained.job_id, "host", ["bank"])

    _, [shown], _ = _models(trained, capsys, "bank", "show", MODEL)
    assert shown["version"] == trained.job_id and shown["party"] == "bank" and len(shown["digest"]) == 64
    _, [staged], _ = _models(trained, capsys, "bank", "show", MODEL, RETRAINED)
    assert staged["stage"] == "staged" and staged["promoted_at"] is None

    # promoting a version the partner does not serve: the service refuses to score with it
    _, [promoted], _ = _models(trained, capsys, "bank", "promote", MODEL, RETRAINED)
    assert promoted["stage"] == "production"
    refused = _score_until(trained, ok=False)
    assert f"serves version '{RETRAINED}' but host 'partner' serves version '{trained.job_id}'" in str(refused)

    _, [back], _ = _models(trained, capsys, "bank", "rollback", MODEL)
    assert back["version"] == trained.job_id
    got = _score_until(trained, ok=True)
    np.testing.assert_allclose(got["score"], trained.expected["score"].head(3), rtol=0, atol=1e-9)

    code, _, err = _models(trained, capsys, "bank", "delete", MODEL, trained.job_id)
    assert code == 2 and "in production" in err
    code, [deleted], _ = _models(trained, capsys, "bank", "delete", MODEL, RETRAINED)
    assert code == 0 and deleted == {"deleted": {"model_id": MODEL, "version": RETRAINED}}
    _, listed, _ = _models(trained, capsys, "bank", "list")
    assert [r["version"] for r in listed] == [trained.job_id]
    code, _, err = _models(trained, capsys, "bank", "show", MODEL, RETRAINED)
    assert code == 2 and f"no model '{MODEL}' version '{RETRAINED}'" in err


def test_vfl_score_writes_the_sink_and_prints_a_summary(trained, capsys):
    sink = trained.root / "cli_scores.parquet"
    code = main(["score", "--config", str(trained.config_path("bank")), "--model", MODEL,
                 "--source", str(trained.root / "bank.csv"), "--sink", str(sink), "--chunk-rows", "150"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    n_absent = len(trained.host_absent)
    assert (summary["rows"], summary["scored"], summary["missing"], summary["chunks"]) == (
        N_ROWS, N_ROWS - n_absent, {"partner": n_absent}, 3)
    assert summary["seconds"] > 0
    assert re.search(r"^\[bank score\] 400 rows .*chunks=3$", err, re.M), err  # CSV: no total
    check_batch_scores(trained, read_table(str(sink)))

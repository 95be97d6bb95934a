"""`vfl models promote|rollback --federated`: the guest moves every party of a model together,
across the two running `vfl serve` processes, each host's own policy deciding; and `vfl models`
reads only the store (no dataset credentials), as a table or as JSON."""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import datetime

import yaml

from tests.serving.conftest import MODEL
from vfl.cli import main
from vfl.errors import DataError
from vfl.store.models import ModelStore

V2 = "retrain-v2"
ONLY_BANK = "bank-only-v3"


def _run(capsys, config, *args: str) -> tuple[int, str, str]:
    code = main(["models", "--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _production(trained, capsys) -> dict[str, str]:
    found = {}
    for party in ("bank", "partner"):
        code, out, err = _run(capsys, trained.config_path(party), "list", MODEL, "--json")
        assert code == 0, err
        found[party] = [r["version"] for r in map(json.loads, out.splitlines()) if r["stage"] == "production"]
    return {party: versions[0] for party, versions in found.items() if len(versions) == 1}


def _copy_version(trained, party: str, role: str, peers: list[str], version: str) -> None:
    store = ModelStore(party, trained.fed.config(party).store.path)
    files = store.open(store.get(MODEL, trained.job_id))
    store.save(MODEL, version, role=role, kind="hetero_lr", peers=peers,
               write=lambda d: shutil.copytree(files, d, dirs_exist_ok=True))


def _served_version(trained, version: str, timeout: float = 10.0) -> None:
    """The bank's service scores with `version` (it re-reads the production version ~1/s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with trained.scoring_client() as client:
                got = client.score(MODEL, trained.expected["id"].head(3))
            if got.attrs["version"] == version and got["score"].notna().all():
                return
        except DataError:
            pass
        assert time.monotonic() < deadline, f"the service did not score with '{version}' in {timeout}s"
        time.sleep(0.2)


def test_federated_promote_and_rollback_move_every_party(trained, capsys):
    bank = trained.config_path("bank")
    _copy_version(trained, "bank", "guest", ["partner"], V2)
    _copy_version(trained, "partner", "host", ["bank"], V2)
    _copy_version(trained, "bank", "guest", ["partner"], ONLY_BANK)
    try:
        code, out, err = _run(capsys, bank, "promote", MODEL, V2, "--federated", "--json")
        assert code == 0, err
        assert [json.loads(line) for line in out.splitlines()] == [
            {"party": "bank", "role": "guest", "previous": trained.job_id, "version": V2},
            {"party": "partner", "role": "host", "previous": trained.job_id, "version": V2}]
        assert _production(trained, capsys) == {"bank": V2, "partner": V2}
        _served_version(trained, V2)

        # a version one host lacks: the host refuses in the dry run and no party changes
        code, _, err = _run(capsys, bank, "promote", MODEL, ONLY_BANK, "--federated")
        assert code == 2 and "host 'partner'" in err and f"no model '{MODEL}' version '{ONLY_BANK}'" in err
        assert _production(trained, capsys) == {"bank": V2, "partner": V2}

        code, out, err = _run(capsys, bank, "rollback", MODEL, "--federated")  # a table
        assert code == 0, err
        header, *rows = out.splitlines()
        assert header.split() == ["PARTY", "ROLE", "PREVIOUS", "VERSION"]
        assert [r.split() for r in rows] == [["bank", "guest", V2, trained.job_id],
                                             ["partner", "host", V2, trained.job_id]]
        assert _production(trained, capsys) == {"bank": trained.job_id, "partner": trained.job_id}
        _served_version(trained, trained.job_id)

        code, out, err = _run(capsys, bank, "rollback", MODEL, "--federated")
        assert code == 1 and out == ""
        assert f"warning: model '{MODEL}' has no earlier production version to roll back to; nothing changed" in err
        assert _production(trained, capsys) == {"bank": trained.job_id, "partner": trained.job_id}
    finally:
        for party, versions in (("bank", (V2, ONLY_BANK)), ("partner", (V2,))):
            store = ModelStore(party, trained.fed.config(party).store.path)
            if store.get(MODEL).version != trained.job_id:
                store.promote(MODEL, trained.job_id)
            for version in versions:
                store.delete(MODEL, version)


def test_the_hosts_policy_decides_a_federated_promote(trained, capsys):
    partner_yaml = trained.config_path("partner")
    original = partner_yaml.read_text()
    data = yaml.safe_load(original)
    data["policy"]["allow"][0]["protocols"] = ["job", "inference"]  # no "promote"
    _copy_version(trained, "bank", "guest", ["partner"], V2)
    _copy_version(trained, "partner", "host", ["bank"], V2)
    try:
        partner_yaml.write_text(yaml.safe_dump(data))
        trained.restart_partner()
        code, _, err = _run(capsys, trained.config_path("bank"), "promote", MODEL, V2, "--federated")
        assert code == 2
        assert ("policy of 'partner' does not allow peer 'bank' protocol 'promote' on dataset "
                "'credit'") in err
        assert _production(trained, capsys) == {"bank": trained.job_id, "partner": trained.job_id}
    finally:
        partner_yaml.write_text(original)
        trained.restart_partner()
        for party in ("bank", "partner"):
            ModelStore(party, trained.fed.config(party).store.path).delete(MODEL, V2)


def test_models_and_jobs_need_no_dataset_credentials(trained, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("VFL_TEST_BANK_DB_PASSWORD", raising=False)
    data = yaml.safe_load(trained.config_path("bank").read_text())
    data["datasets"]["credit"]["uri"] = ("mysql+pymysql://bank:${VFL_TEST_BANK_DB_PASSWORD}"
                                         "@127.0.0.1:9/credit?table=customers")
    config = tmp_path / "bank.yaml"
    config.write_text(yaml.safe_dump(data))

    code, out, err = _run(capsys, config, "list")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["MODEL_ID", "VERSION", "STAGE", "ROLE", "KIND", "PEERS", "CREATED_AT",
                              "PROMOTED_AT", "AUC", "KS"]
    [row] = [r.split() for r in rows]
    assert row[:6] == [MODEL, trained.job_id, "production", "guest", "hetero_lr", "partner"]
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
    assert re.fullmatch(iso, row[6]) and re.fullmatch(iso, row[7])
    assert re.fullmatch(r"0\.\d{4}", row[8])  # rounded for reading

    code, out, _ = _run(capsys, config, "list", "--json")
    [record] = [json.loads(line) for line in out.splitlines()]
    assert datetime.fromisoformat(record["created_at"]).tzinfo is not None
    assert isinstance(record["auc"], float)

    code, out, _ = _run(capsys, config, "show", MODEL)
    assert code == 0 and re.search(r"^stage\s+production$", out, re.M)

    assert main(["jobs", "--config", str(config), "list"]) == 0
    assert capsys.readouterr().out.split()[:3] == ["JOB_ID", "PROTOCOL", "ROLE"]

    # the same file still needs the password where a dataset is read: the test can tell
    code = main(["score", "--config", str(config), "--model", MODEL, "--source", "x.csv", "--sink", "y.csv"])
    assert code == 2 and "environment variable VFL_TEST_BANK_DB_PASSWORD is not set" in capsys.readouterr().err

"""`vfl jobs list/show/cancel` against a running service and its job store."""

from __future__ import annotations

import json
import time

from tests.parties import service_kit as kit
from vfl.cli import main
from vfl.parties.federation import connect_federation
from vfl.parties.service import PartyService

ROLES = {"bank": "guest", "partner": "host"}


def test_operator_lists_shows_and_cancels_jobs(tmp_path, capsys):
    fed = kit.Federation(tmp_path, ["bank", "partner"])
    bank_yaml = fed.write_config("bank")
    partner_yaml = fed.write_config("partner")
    with PartyService(fed.config("partner")), connect_federation(fed.config("bank")) as bank:
        bank.run("j-done", "ping", {}, ROLES, {}, timeout=30)
        bank.start_job("bank", "j-long", "test-rounds", {"rounds": 1000, "pause": 0.05}, ROLES, {})
        time.sleep(1.0)
        capsys.readouterr()
        assert main(["jobs", "--config", str(partner_yaml), "show", "j-long", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)  # the host's role reports its rounds
        assert shown["state"] == "running" and shown["peer"] == "bank"
        assert shown["progress"].endswith("/1000")  # "step: done/total"
        assert main(["jobs", "--config", str(bank_yaml), "cancel", "j-long", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "cancelled"
        assert bank.wait_job("partner", "j-long", 10).state == "cancelled"
    # the store answers with the service stopped
    assert main(["jobs", "--config", str(bank_yaml), "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["job_id"], r["state"]) for r in listed] == [("j-long", "cancelled"), ("j-done", "succeeded")]
    assert main(["jobs", "--config", str(bank_yaml), "show", "nope"]) == 2
    assert "no job 'nope'" in capsys.readouterr().err

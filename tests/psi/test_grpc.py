"""ECDH-PSI between two real party services: the partner is a `vfl serve` OS process with its
own dataset and worker pool; messages travel over gRPC with mutual TLS on loopback."""

from __future__ import annotations

import pandas as pd

from tests.parties import service_kit as kit
from tests.psi.psi_kit import aligned_digest
from vfl.parties.federation import connect_federation
from vfl.psi import align, ecdh

ROLES = {"bank": "guest", "partner": "host"}


def test_psi_between_service_processes_over_mtls(tmp_path):
    fed = kit.Federation(tmp_path, ["bank", "partner"])
    partner_ids = [f"cust-{i}" for i in range(300, 0, -1)]  # 300 .. 1
    (tmp_path / "partner.csv").write_text("cid,x\n" + "".join(f"{c},1\n" for c in partner_ids))
    fed.write_config("bank")
    fed.write_config("partner", plugins=["tests.psi.psi_kit"],
                     datasets={"ids": {"uri": str(tmp_path / "partner.csv"), "id_column": "cid"}})
    served = kit.Served(fed.root / "partner" / "party.yaml", fed.ports["partner"],
                        tmp_path / "partner.log")
    try:
        bank = pd.DataFrame({"cid": [f"cust-{i}" for i in range(200, 501)]})  # 200 .. 500
        with connect_federation(fed.config("bank")) as federation:
            with federation.job("j-psi", "test-psi", {"dataset": "ids", "chunk": 40}, ROLES,
                                {"partner": ["ids"]}) as ctx:
                result = ecdh.guest(ctx.child("psi"), bank, chunk_size=32)
                digest = ctx.recv("partner", "digest")
            assert federation.wait_job("partner", "j-psi", 30).state == "succeeded"
    finally:
        served.stop()
    aligned = align(bank, result)["cid"].tolist()
    assert result.size == 101 and result.peer_size == 300
    assert set(aligned) == {f"cust-{i}" for i in range(200, 301)}
    assert aligned_digest(aligned) == digest, served.log()

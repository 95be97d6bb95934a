"""The process pool: started once per party service and reused by every job; workers never
re-run the caller's main module (a plain script needs no `if __name__ == "__main__":`); no
worker or fork server outlives the process that owns the pool, even a killed one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil

from tests.parties import service_kit as kit
from tests.psi.psi_kit import aligned_digest
from vfl.parties.federation import connect_federation
from vfl.psi import align, ecdh

REPO = Path(__file__).resolve().parents[2]
ROLES = {"bank": "guest", "partner": "host"}
WORKERS = 2


def pool_workers(pid: int) -> set[int]:
    """The pids of a process's pool workers: the children of its fork server (the process's
    own children are the fork server and the resource tracker)."""
    return {p.pid for p in psutil.Process(pid).children(recursive=True) if p.ppid() != pid}


def test_a_service_starts_its_pool_once_and_every_psi_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VFL_WORKERS", str(WORKERS))
    fed = kit.Federation(tmp_path, ["bank", "partner"])
    (tmp_path / "partner.csv").write_text("cid,x\n" + "".join(f"c{i},1\n" for i in range(400)))
    fed.write_config("bank")
    fed.write_config("partner", plugins=["tests.psi.psi_kit"],
                     datasets={"ids": {"uri": str(tmp_path / "partner.csv"), "id_column": "cid"}})
    served = kit.Served(fed.root / "partner" / "party.yaml", fed.ports["partner"], tmp_path / "partner.log")
    try:
        deadline = time.monotonic() + 60
        while len(pool_workers(served.proc.pid)) < WORKERS:  # started with the service
            assert time.monotonic() < deadline, served.log()
            time.sleep(0.1)
        started = pool_workers(served.proc.pid)
        bank = pd.DataFrame({"cid": [f"c{i}" for i in range(200, 600)]})
        with connect_federation(fed.config("bank")) as federation:
            for job in ("j-1", "j-2"):
                with federation.job(job, "test-psi", {"dataset": "ids", "chunk": 50}, ROLES,
                                    {"partner": ["ids"]}) as ctx:
                    result = ecdh.guest(ctx.child("psi"), bank, chunk_size=50)
                    digest = ctx.recv("partner", "digest")
                assert federation.wait_job("partner", job, 30).state == "succeeded"
                assert aligned_digest(align(bank, result)["cid"].tolist()) == digest
                assert result.size == 200
                assert pool_workers(served.proc.pid) == started, "a job started new workers"
    finally:
        served.stop()


PLAIN_SCRIPT = """
import pandas as pd
from vfl.parties import simulate
from vfl.psi import ecdh

bank = pd.DataFrame({"id": [f"c{i}" for i in range(300)]})
partner = pd.DataFrame({"id": [f"c{i}" for i in range(100, 500)]})
result = simulate({"bank": (ecdh.guest, {"ids": bank}), "partner": (ecdh.host, {"ids": partner})},
                  roles={"bank": "guest", "partner": "host"})
print("common", result["bank"].size)
"""


def test_a_plain_script_without_a_main_guard_runs(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "VFL_WORKERS": "2"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "common 200"


OWNER_SCRIPT = """
from vfl.parties import executor

executor.start_in_background().join()
print(flush=True)
input()  # until the test kills this process
"""


def test_a_killed_owner_leaves_no_worker_or_fork_server_behind(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(OWNER_SCRIPT)
    owner = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "VFL_WORKERS": "2"})
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "\n"  # the pool is up
        workers = pool_workers(owner.pid)
        server = {psutil.Process(w).ppid() for w in workers}
        assert len(workers) == WORKERS and len(server) == 1
        processes = [psutil.Process(pid) for pid in workers | server]
        owner.send_signal(signal.SIGKILL)  # no atexit, no pool shutdown
        owner.wait(timeout=10)
        _, alive = psutil.wait_procs(processes, timeout=15)
        assert not alive, f"outlived their killed owner: {alive}"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()

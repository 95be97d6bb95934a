"""Two organizations from `docker compose up`: the image built from a fresh clone, the bank and
the partner each in their own `vfl serve` container (own certificates, own store volume), the
partner's data in a MariaDB container, the bank's in Parquet on a mounted folder.

The bank's job runs with `docker compose exec bank vfl run ...` (PSI, HE-LR with 1024-bit keys,
evaluation, export, scoring); then one online score over gRPC, one over HTTPS and a batch score;
the same job without containers (every party in one process on the same data and seed) gets
the same AUC. `down` keeps the stores on their volumes: a second `up` serves the model again
without retraining. No image is pulled: the base image comes from Debian's packages
(tests/deploy/docker_kit.py); every container uses the host's network and binds 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from tests.deploy.conftest import REPORT
from tests.deploy.docker_kit import Compose, Daemon, base_image, run
from tests.parties.service_kit import free_port
from vfl import demo, demo_data
from vfl.connectors import read_table, write_table
from vfl.crypto.tls import TlsFiles
from vfl.jobs import TEST_SCORES
from vfl.serving.client import ScoringClient

pytestmark = [pytest.mark.deploy, pytest.mark.slow, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "vfl:test"
MARIADB_IMAGE = "vfl-mariadb:test"
MODEL = "credit-risk"
ROWS = 6000  # UCI rows used (each side keeps 80%, PSI finds the common ones)
IMAGE_SIZE_GOAL = 1.5e9
UID = 10001  # the image's user


@dataclass
class Deployment:
    compose: Compose
    root: Path  # the clone
    out: Path  # the bank's /var/lib/vfl/out
    data: Path  # the bank's /data
    tls: TlsFiles  # the bank's certificate, copied out of its volume
    env: dict[str, str]
    summary: dict[str, object]
    bank: pd.DataFrame
    partner: pd.DataFrame

    @property
    def tested(self) -> pd.DataFrame:
        return read_table(str(self.out / "reports" / str(self.summary["job_id"]) / TEST_SCORES))

    def vfl(self, *args: str) -> str:
        """`docker compose exec bank vfl ...` (in the bank's running container; stdout)."""
        return self.compose("exec", "-T", "bank", "vfl", *args, timeout=1800).stdout


def _timed(name: str, started: float) -> float:
    now = time.monotonic()
    REPORT[f"time: {name}"] = f"{now - started:.0f} s"
    return now


def _writable_by_image_user(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, UID, UID)
    else:
        path.chmod(0o777)
    return path


@pytest.fixture(scope="module")
def deployment(docker_daemon: Daemon, shared_data: Path, tmp_path_factory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("compose")
    clock = time.monotonic()
    base = base_image(docker_daemon)
    clock = _timed("base image (mmdebstrap + import, cached)", clock)

    clone = tmp / "clone"
    run(["git", "clone", "--quiet", str(REPO), str(clone)])
    previous = docker_daemon.inspect("image", IMAGE)
    run(["make", "-C", str(clone), "image", f"VENV={sys.prefix}", f"IMAGE={IMAGE}",
         f"BASE_IMAGE={base}"], env=docker_daemon.env, timeout=1800)
    built = docker_daemon.inspect("image", IMAGE)
    assert built is not None
    if previous is not None and previous["Id"] != built["Id"] and docker_daemon.ours:
        docker_daemon.docker("image", "rm", previous["Id"], check=False)  # this test's last build
    clock = _timed("make image (wheelhouse + docker build)", clock)
    docker_daemon.docker("build", "--quiet", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
                         "--tag", MARIADB_IMAGE, str(clone / "deploy" / "mariadb"))
    clock = _timed("MariaDB image (cached)", clock)

    deploy = clone / "deploy"
    job = yaml.safe_load((deploy / "compose" / "bank" / "job.yaml").read_text())
    job["steps"]["train"]["params"]["key_bits"] = 1024
    (deploy / "compose" / "bank" / "job.yaml").write_text(yaml.safe_dump(job))
    data = tmp / "bank-data"
    data.mkdir()
    out = _writable_by_image_user(tmp / "bank-out")
    env = {"VFL_IMAGE": IMAGE, "VFL_MARIADB_IMAGE": MARIADB_IMAGE,
           "PARTNER_DB_PASSWORD": secrets.token_urlsafe(12), "BANK_DATA": str(data),
           "BANK_OUT": str(out), **{name: str(free_port()) for name in
                                   ("BANK_PORT", "BANK_HTTP_PORT", "PARTNER_PORT", "PARTNER_DB_PORT")}}
    env["PARTNER_DB_URL"] = (f"mysql+pymysql://partner:{env['PARTNER_DB_PASSWORD']}@127.0.0.1:"
                             f"{env['PARTNER_DB_PORT']}/partner")
    compose = Compose(docker_daemon, deploy / "compose.yaml", f"vfltest{os.getpid()}", env)
    try:
        compose("up", "--detach", "partner-db")
        compose.wait_healthy("partner-db")
        bank, partner = _prepare_data(shared_data, data, env["PARTNER_DB_URL"])
        compose("up", "--detach")
        for service in ("bank", "partner"):
            compose.wait_healthy(service)
        clock = _timed("compose up (to healthy)", clock)
        tls_dir = tmp / "bank-tls"
        docker_daemon.docker("cp", f"{compose.container('bank')}:/etc/vfl-tls/.", str(tls_dir))
        tls = TlsFiles(tls_dir / "ca.pem", tls_dir / "bank.pem", tls_dir / "bank.key")
        found = Deployment(compose, clone, out, data, tls, env, {}, bank, partner)
        found.summary = json.loads(found.vfl("run", "/etc/vfl/job.yaml", "--party",
                                             "/etc/vfl/party.yaml", "--mode", "submit"))
        _timed("the job in containers", clock)
        yield found
    finally:
        compose("down", "--volumes", "--timeout", "20", check=False)


def _prepare_data(shared_data: Path, data: Path, partner_db: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The examples' data, first ROWS customers: bank.parquet, and the partner's MariaDB table."""
    raw = pd.read_csv(shared_data / "UCI_Credit_Card.csv").head(ROWS)
    raw.to_csv(data / "uci.csv", index=False)
    guest, host = demo_data.split_uci(data / "uci.csv", missing_rate=0.05, seed=0)
    (data / "uci.csv").unlink()
    guest, host = demo.partial_overlap(guest, host, seed=7)
    write_table(guest, str(data / "bank.parquet"))
    write_table(host, f"{partner_db}?table=customers")
    return guest, host


def test_the_image_runs_as_a_non_root_user_and_its_health_check_turns_healthy(deployment, docker_daemon):
    image = docker_daemon.inspect("image", IMAGE)
    assert image is not None
    size = int(image["Size"])
    REPORT["image size"] = f"{size / 1e9:.2f} GB ({IMAGE}, CPU torch)"
    assert size < IMAGE_SIZE_GOAL, f"image is {size / 1e9:.2f} GB"
    assert image["Config"]["User"] == f"{UID}:{UID}"
    assert image["Config"]["Healthcheck"]["Test"] == [
        "CMD", "vfl", "health", "--config", "/etc/vfl/party.yaml"]
    for service in ("bank", "partner"):
        container = deployment.compose.container(service)
        assert docker_daemon.docker("exec", container, "id", "-u").stdout.strip() == str(UID)
        top = docker_daemon.docker("top", container, "-o", "pid,uid,args").stdout
        serving = [line.split() for line in top.splitlines() if "serve" in line]
        assert serving and all(fields[1] == str(UID) for fields in serving), top
        state = docker_daemon.inspect("container", container)
        assert state is not None and state["State"]["Health"]["Status"] == "healthy"
        assert state["State"]["Health"]["Log"][-1]["ExitCode"] == 0
        assert f'"party": "{service}"' in state["State"]["Health"]["Log"][-1]["Output"]


def test_the_job_in_containers_gets_the_auc_of_the_same_job_without_containers(deployment, tmp_path):
    summary = deployment.summary
    common = set(deployment.bank["id"]) & set(deployment.partner["id"])
    assert summary["intersection_size"] == len(common)
    assert summary["model_id"] == MODEL and summary["scored"]["scored"] == len(common)  # type: ignore[index]
    assert float(summary["auc"]) > 0.65  # type: ignore[arg-type]

    # the same job, every party in one process on this machine, same data and seed
    configs = deployment.root / "deploy" / "compose"
    for party in ("bank", "partner"):
        text = (configs / party / "party.yaml").read_text()
        text = (text.replace("/data/", f"{deployment.data}/")
                .replace("/var/lib/vfl/store", str(tmp_path / party / "store")))
        (tmp_path / f"{party}.yaml").write_text(text)
    job = yaml.safe_load((configs / "bank" / "job.yaml").read_text())
    job["parties"] = {"bank": "bank.yaml", "partner": "partner.yaml"}
    job["steps"]["evaluate"]["out_dir"] = str(tmp_path / "reports")
    job["steps"]["score"] = {"source": str(deployment.data / "bank.parquet"),
                             "sink": str(tmp_path / "scores.parquet")}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    done = run([sys.executable, "-m", "vfl.cli", "run", "job.yaml"], cwd=tmp_path, timeout=1800,
               env={**os.environ, **deployment.env, "PYTHONPATH": str(REPO)})
    local = json.loads(done.stdout)
    assert local["intersection_size"] == summary["intersection_size"]
    assert abs(float(local["auc"]) - float(summary["auc"])) <= 1e-9, (local["auc"], summary["auc"])  # type: ignore[arg-type]


def test_online_scores_over_grpc_and_https_equal_the_trained_models_scores(deployment):
    online, http = _score_online(deployment)
    tested = deployment.tested.set_index("id")
    np.testing.assert_allclose(online["score"], tested.loc[online["id"], "score"], rtol=0, atol=1e-9)
    assert online.attrs["version"] == deployment.summary["job_id"]
    np.testing.assert_allclose(http["score"], tested.loc[http["id"], "score"], rtol=0, atol=1e-9)


def _score_online(deployment: Deployment) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = deployment.tested["id"].head(5).tolist()
    with ScoringClient(f"127.0.0.1:{deployment.env['BANK_PORT']}", "bank", deployment.tls) as client:
        online = client.score(MODEL, ids)
    reply = requests.post(
        f"https://127.0.0.1:{deployment.env['BANK_HTTP_PORT']}/v1/models/{MODEL}/score",
        json={"ids": ids[:3]}, cert=(str(deployment.tls.cert), str(deployment.tls.key)),
        verify=str(deployment.tls.ca), timeout=30)
    assert reply.status_code == 200, reply.text
    return online, pd.DataFrame(reply.json()["results"])


def test_batch_scores_equal_the_trained_models_scores(deployment):
    out = json.loads(deployment.vfl("score", "--config", "/etc/vfl/party.yaml", "--model", MODEL,
                                    "--source", "/data/bank.parquet",
                                    "--sink", "/var/lib/vfl/out/batch.parquet"))
    assert out["rows"] == len(deployment.bank) and out["scored"] == deployment.summary["intersection_size"]
    scores = read_table(str(deployment.out / "batch.parquet"))
    both = deployment.tested.merge(scores, on="id", suffixes=("_trained", "_served"))
    assert len(both) == len(deployment.tested)
    np.testing.assert_allclose(both["score_served"], both["score_trained"], rtol=0, atol=1e-9)
    assert scores[~scores["id"].isin(deployment.partner["id"])]["score"].isna().all()


def test_a_rotated_certificate_is_served_after_a_restart(deployment, docker_daemon):
    """docs/deployment.md's rotation: a new partner certificate from the same CA, restart."""
    compose = deployment.compose

    def partner_cert() -> str:
        return docker_daemon.docker("exec", compose.container("partner"), "cat",
                                    "/etc/vfl-tls/partner.pem").stdout

    before, scores = partner_cert(), _score_online(deployment)
    compose("run", "--rm", "--user", "root", "--entrypoint", "sh", "certs", "-ec",
            "vfl certs issue partner --dir /certs/ca --out /certs/partner"
            " && chown -R 10001:10001 /certs/partner")
    compose("restart", "partner")
    compose.wait_healthy("partner")
    assert partner_cert() != before
    for old, new in zip(scores, _score_online(deployment), strict=True):
        np.testing.assert_allclose(new["score"], old["score"], rtol=0, atol=0)


def test_down_keeps_the_stores_and_a_second_up_serves_the_model_without_retraining(
        deployment, docker_daemon):
    compose = deployment.compose
    before = _score_online(deployment)
    compose("down", "--timeout", "20")
    volumes = set(docker_daemon.docker("volume", "ls", "--quiet").stdout.split())
    for name in ("bank-store", "partner-store", "bank-tls", "partner-tls", "partner-db"):
        assert f"{compose.project}_{name}" in volumes
    compose("up", "--detach")
    for service in ("bank", "partner"):
        compose.wait_healthy(service)
    after = _score_online(deployment)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_allclose(new["score"], old["score"], rtol=0, atol=0)
    assert after[0].attrs["version"] == deployment.summary["job_id"]
    jobs = [json.loads(line) for line in deployment.vfl(
        "jobs", "--config", "/etc/vfl/party.yaml", "list", "--json").splitlines()]
    assert [job["job_id"] for job in jobs] == [deployment.summary["job_id"]]  # trained once


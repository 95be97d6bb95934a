# %% [markdown]
# # A bank and its data partner, end to end (notebook-style script)
#
# The same flow as examples/README.md, from Python. Run it cell by cell in an editor that
# understands `# %%` cells, or at once:
#
#     .venv/bin/python examples/walkthrough.py
#
# Each party runs its own `vfl serve` process (mutual TLS with certificates made by
# `vfl certs`); the bank's data is a Parquet file, the partner's a MySQL table. Give the
# partner's database as PARTNER_DB_URL (any SQLAlchemy URL); without it the script starts a
# throwaway MariaDB server when the Debian package mariadb-server is installed, and otherwise
# falls back to SQLite. Ports come from BANK_PORT, PARTNER_PORT and BANK_HTTP_PORT (defaults
# 7101, 7102, 7180); everything is written under examples/work/.

# %%
from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import requests

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # prepare_data, and the repo's tests.support

from prepare_data import prepare  # noqa: E402

from vfl import load_job_config, load_party_config, run_federated  # noqa: E402
from vfl.cli import with_key_bits  # noqa: E402
from vfl.crypto.tls import TlsFiles  # noqa: E402
from vfl.serving import ModelStore, ScoringClient, batch_score  # noqa: E402

WORK = HERE / "work"
VFL = [sys.executable, "-m", "vfl.cli"]
MODEL = "credit-risk"
stack = contextlib.ExitStack()  # everything started here is stopped at the end (or on error)
atexit.register(stack.close)


def partner_database() -> str:
    """PARTNER_DB_URL, else a throwaway MariaDB, else SQLite."""
    if os.environ.get("PARTNER_DB_URL"):
        return os.environ["PARTNER_DB_URL"]
    try:
        from tests.support.mariadb import MariaDBServer, MariaDBUnavailable
    except ImportError:
        MariaDBServer = None  # noqa: N806 - not in a repository checkout
    if MariaDBServer is not None:
        try:
            return str(stack.enter_context(MariaDBServer()).url)
        except MariaDBUnavailable as exc:
            print(f"({exc}; using SQLite instead)")
    return f"sqlite:///{WORK / 'partner.db'}"


# %% [markdown]
# ## 1. Data: the bank's Parquet file and the partner's table

# %%
os.environ["PARTNER_DB_URL"] = partner_database()
print(prepare(WORK, os.environ["PARTNER_DB_URL"]))

# %% [markdown]
# ## 2. Certificates: one CA for the federation, one certificate per party
# In real life each party makes its own key and the CA signs it; here one folder holds all.

# %%
certs = WORK / "certs"
if not (certs / "ca.pem").exists():
    subprocess.run([*VFL, "certs", "ca", "--dir", str(certs)], check=True)
subprocess.run([*VFL, "certs", "issue", "bank", "--host", "127.0.0.1", "--dir", str(certs)], check=True)
subprocess.run([*VFL, "certs", "issue", "partner", "--dir", str(certs)], check=True)

# %% [markdown]
# ## 3. Each party starts its own service
# The partner only runs `vfl serve`; its policy (partner.yaml) decides what the bank may run.


# %%
def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def serve(party: str) -> subprocess.Popen[bytes]:
    config = load_party_config(HERE / f"{party}.yaml")
    log = open(WORK / f"{party}-serve.log", "ab")  # noqa: SIM115 - closed with the stack
    stack.callback(log.close)
    proc = subprocess.Popen([*VFL, "serve", "--config", str(HERE / f"{party}.yaml")],
                            stdout=log, stderr=subprocess.STDOUT)
    stack.callback(proc.wait, 30)
    stack.callback(proc.terminate)
    host, port = config.listen.rsplit(":", 1)
    deadline = time.monotonic() + 60
    while not listening(host, int(port)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{party}'s service did not start; see {log.name}")
        time.sleep(0.1)
    return proc


serve("partner")
serve("bank")

# %% [markdown]
# ## 4. The bank runs the job: PSI, preprocessing, HE logistic regression, evaluation, export,
# batch scoring. Submitted to the bank's own service; progress shows as it goes.

# %%
bank = load_party_config(HERE / "bank.yaml")
job = load_job_config(HERE / "job.yaml")
if os.environ.get("VFL_KEY_BITS"):  # 1024: a quicker try, NOT for production (2048 is the default)
    job = with_key_bits(job, int(os.environ["VFL_KEY_BITS"]))
outcome = run_federated(job, bank)  # shows every party's progress (bars, or lines in a log)
print(json.dumps(outcome.summary(), indent=2))

# %% [markdown]
# ## 5. Online scoring on the bank's service: gRPC and HTTP/JSON (both mutual TLS)

# %%
tls = bank.tls
assert tls is not None
customers = [int(i) for i in pd.read_parquet(WORK / "bank.parquet")["id"].head(5)]
with ScoringClient(bank.listen, "bank", TlsFiles(tls.ca, tls.cert, tls.key)) as client:
    online = client.score(MODEL, customers)
print(online)

http = requests.post(f"https://{bank.serving.http_listen}/v1/models/{MODEL}/score",
                     json={"ids": customers}, cert=(str(tls.cert), str(tls.key)), verify=str(tls.ca),
                     timeout=30)
print(http.status_code, http.json())

# %% [markdown]
# ## 6. Batch scoring from Python (the same as `vfl score`), then the model's versions

# %%
summary = batch_score(bank, MODEL, str(WORK / "bank.parquet"), str(WORK / "batch_scores.parquet"))
print(f"batch: {summary.rows} rows, {summary.scored} scored, missing per host {summary.missing}, "
      f"{summary.rows_per_second:,.0f} rows/s")
for party in ("bank", "partner"):
    config = load_party_config(HERE / f"{party}.yaml")
    print(party, [(r.version, r.stage) for r in ModelStore(party, config.store.path).list(MODEL)])

# %%
stack.close()
print(json.dumps({"auc": outcome.metrics.get("auc"), "ks": outcome.metrics.get("ks"),
                  "report": outcome.report, "version": outcome.job_id,
                  "online": online.to_dict(orient="records"), "batch_rows": summary.rows}, default=str))

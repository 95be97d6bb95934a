"""The README's Python quickstart runs as a plain script, without an `if __name__` guard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from vfl import demo
from vfl.connectors import write_table

REPO = Path(__file__).resolve().parents[1]


def quickstart() -> str:
    """The first Python block under '## Quickstart from Python'."""
    section = (REPO / "README.md").read_text().split("## Quickstart from Python", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1)


def test_the_readme_quickstart_runs_as_a_plain_script(tmp_path):
    code = quickstart()
    assert "__main__" not in code and "run_simulated" in code
    out = tmp_path / "runs" / "demo"  # where `make demo` writes it, relative to the script's cwd
    out.mkdir(parents=True)
    guest, host, guest_pre, host_pre, train = demo.breast_cancer_parties()
    guest, host = demo.partial_overlap(guest, host, seed=1)
    write_table(guest, str(out / "bank.parquet"))
    write_table(host, f"sqlite:///{out / 'partner.db'}?table=customers")
    demo._write_configs(out, guest, host, guest_pre, host_pre, {**train, "epochs": 1, "key_bits": 1024})
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(REPO), "VFL_WORKERS": "2"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    auc, report = done.stdout.split()
    assert float(auc) > 0.9 and Path(report).exists()

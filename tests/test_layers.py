"""The import layers of .importlinter hold: no module imports a layer above its own, and no
package has an import cycle between its modules. `make test` runs the same check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_vfl_keeps_its_layers_and_has_no_import_cycles():
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "vfl", tmp_path / "vfl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_an_upward_import_breaks_the_contract(tmp_path):
    root = _copy(tmp_path)
    with (root / "vfl" / "net" / "codec.py").open("a") as f:
        f.write("\nfrom vfl.serving import cache  # noqa: E402,F401 - the wire reaching up\n")
    done = _lint_imports(root)
    assert done.returncode != 0
    assert "vfl.net is not allowed to import vfl.serving" in done.stdout, done.stdout


def test_an_import_cycle_inside_a_package_breaks_the_contract(tmp_path):
    root = _copy(tmp_path)
    with (root / "vfl" / "parties" / "grpc_channel.py").open("a") as f:
        f.write("\nfrom vfl.parties import service  # noqa: E402,F401 - service imports this module\n")
    done = _lint_imports(root)
    assert done.returncode != 0
    assert "No cycles are allowed in vfl.parties" in done.stdout, done.stdout

"""The public API: `from vfl import ...` gives a notebook what it needs, loading heavy libraries
only for the names that need them."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vfl
import vfl.algorithms
import vfl.preprocessing
import vfl.serving

REPO = Path(__file__).resolve().parents[1]


def readme_imports() -> set[str]:
    """Every name the README's Python blocks import with `from vfl import ...`."""
    text = (REPO / "README.md").read_text()
    names: set[str] = set()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        for found in re.findall(r"^from vfl import ([\w, ]+)$", block, re.M):
            names.update(n.strip() for n in found.split(","))
    return names


def test_the_readme_imports_its_names_from_vfl():
    names = readme_imports()
    assert {"run_simulated", "run_federated", "load_job_config", "load_party_config", "simulate"} <= names
    namespace: dict[str, object] = {}
    exec(f"from vfl import {', '.join(sorted(names))}", namespace)  # noqa: S102
    assert namespace["run_simulated"] is importlib.import_module("vfl.runner").run_simulated


@pytest.mark.parametrize("package", [vfl, vfl.algorithms, vfl.preprocessing, vfl.serving], ids=lambda p: p.__name__)
def test_every_exported_name_is_the_defining_modules_object(package):
    assert len(set(package.__all__)) == len(package.__all__)
    for name in package.__all__:
        value = getattr(package, name)
        home = getattr(value, "__module__", None)
        if home is not None and home.startswith("vfl."):  # the same object, not a copy
            assert getattr(importlib.import_module(home), name) is value, name
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        package.NoSuchThing  # noqa: B018


def test_the_estimators_are_exported():
    from vfl import HeteroLogisticRegression, PartyPreprocessor, SplitNNClassifier, SplitNNHost
    from vfl.algorithms.hetero_lr.estimator import HeteroLogisticRegression as Lr
    assert HeteroLogisticRegression is Lr is vfl.algorithms.HeteroLogisticRegression
    assert {SplitNNClassifier.__name__, SplitNNHost.__name__, PartyPreprocessor.__name__} == {
        "SplitNNClassifier", "SplitNNHost", "PartyPreprocessor"}


def test_importing_vfl_loads_torch_and_scikit_learn_only_for_the_names_that_need_them():
    code = ("import sys\n"
            "import vfl, vfl.algorithms, vfl.preprocessing.schema\n"
            "heavy = ('torch', 'sklearn', 'skops', 'matplotlib')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
            "from vfl import SplitNNClassifier\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=REPO, timeout=120)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


# --- numpydoc docstrings of the exported names ---------------------------------------------------
ERRORS_AND_VERSION = {"__version__", "CodecError", "ConfigError", "DataError", "PeerError",
                      "PeerTimeoutError", "PolicyError", "ProtocolError", "VflError"}


def documented(doc: str, section: str) -> list[str] | None:
    """The names a numpydoc `section` (e.g. "Parameters") lists, or None without the section."""
    lines = inspect.cleandoc(doc).splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == section and set(lines[i + 1].strip()) == {"-"}:
            indent = len(line) - len(line.lstrip())
            names: list[str] = []
            for entry in lines[i + 2:]:
                if entry.strip() and len(entry) - len(entry.lstrip()) == indent:
                    if set(entry.strip()) == {"-"} or not (entry.strip()[0].isalnum() or entry.strip()[0] == "_"):
                        break
                    if names and entry.strip() in {"Returns", "Raises", "Attributes", "Yields", "Notes"}:
                        break
                    names += [n.strip() for n in entry.split(" : ")[0].split(",")]
            return [n for n in names if n not in {"Returns", "Raises", "Attributes"}]
    return None


def public_callables() -> list[tuple[str, object]]:
    out = []
    for package in (vfl, vfl.algorithms, vfl.preprocessing):
        for name in package.__all__:
            if name not in ERRORS_AND_VERSION:
                out.append((f"{package.__name__}.{name}", getattr(package, name)))
    return out


@pytest.mark.parametrize(("name", "obj"), public_callables(), ids=[n for n, _ in public_callables()])
def test_every_exported_name_has_a_numpydoc_docstring(name, obj):
    doc = obj.__doc__ or ""
    assert doc.strip(), f"{name} has no docstring"
    if inspect.isclass(obj):
        fields = getattr(obj, "model_fields", None) or getattr(obj, "__dataclass_fields__", None)
        if fields is not None and "Parameters" not in doc:  # a config or result record: its fields
            assert documented(doc, "Attributes") is not None, f"{name}: no Attributes section"
            return
        wanted = list(fields) if fields is not None else list(inspect.signature(obj.__init__).parameters)[1:]
        wanted = [p for p in wanted if not p.startswith("_")]
    else:
        wanted = list(inspect.signature(obj).parameters)
        if inspect.signature(obj).return_annotation not in (None, "None"):
            assert documented(doc, "Returns") is not None, f"{name}: no Returns section"
    if wanted:
        listed = documented(doc, "Parameters")
        assert listed is not None, f"{name}: no Parameters section"
        assert sorted(listed) == sorted(wanted), f"{name}: documents {listed}, takes {wanted}"

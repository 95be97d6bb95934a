"""The one rule for names that become paths, at the config and CLI boundaries."""

from __future__ import annotations

import pytest

from vfl.cli import main
from vfl.config import JobConfig
from vfl.errors import ConfigError, UnsafeNameError
from vfl.names import check_name
from vfl.parties.config import PartyConfig, parse

UNSAFE = ["..", ".", "", "a\x00b", "/etc/passwd", "a/b", "a\\b", "ｊob", "jоb", "-flag", "x" * 129, "a\n"]


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused_naming_the_field(name):
    with pytest.raises(UnsafeNameError, match=r"^model_id: .* is not a safe name"):
        check_name(name, "model_id")


@pytest.mark.parametrize("name", ["credit", "job-2026.11_a", "A", "x" * 128, "1"])
def test_safe_names_pass(name):
    assert check_name(name, "job_id") == name


def _job(**over):
    body = {"guest": "bank", "hosts": ["partner"], "datasets": {"bank": "d", "partner": "d"}}
    body.update(over)
    return body


@pytest.mark.parametrize("body, field", [
    (_job(job_id=".."), "job_id"),
    (_job(datasets={"bank": "../d", "partner": "d"}), "datasets.bank"),
    (_job(steps={"export": {"model_id": "ｃredit"}}), "steps.export.model_id"),
])
def test_job_yaml_names_are_checked_with_the_field_path(body, field):
    with pytest.raises(ConfigError, match=rf"job.yaml: {field}: .* is not a safe name"):
        parse(JobConfig, body, "job.yaml")


@pytest.mark.parametrize("body, field", [
    ({"name": "bank", "datasets": {"..": {"uri": "x.csv", "id_column": "id"}}}, "datasets.\\.\\."),
    ({"name": "bank", "serving": {"models": {"a\x00": {"dataset": "d"}}}}, "serving.models"),
    ({"name": "bank", "serving": {"models": {"m": {"dataset": "/abs"}}}}, "serving.models.m.dataset"),
])
def test_party_yaml_names_are_checked_with_the_field_path(body, field):
    with pytest.raises(ConfigError, match=rf"bank.yaml: {field}.*is not a safe name"):
        parse(PartyConfig, body, "bank.yaml")


def test_the_cli_refuses_unsafe_names_before_opening_anything(tmp_path, capsys):
    config = tmp_path / "never-read.yaml"
    for argv, field in ((["models", "--config", str(config), "promote", "credit", "../v1"], "version"),
                        (["models", "--config", str(config), "show", "a\x00"], "model_id"),
                        (["score", "--config", str(config), "--model", "..", "--source", "s", "--sink", "t"],
                         "--model"),
                        (["jobs", "--config", str(config), "show", "/etc"], "job_id")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert f"{field}: " in capsys.readouterr().err
    assert not config.exists()

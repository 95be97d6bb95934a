import re
from pathlib import Path

import pytest

from vfl.config import load_job_config
from vfl.errors import ConfigError
from vfl.parties.config import load_party_config


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_party_config_resolves_paths_relative_to_the_file(tmp_path):
    cfg = write(tmp_path / "bank.yaml", """
name: bank
insecure: true
peers: {partner: {address: "127.0.0.1:50052"}}
datasets:
  credit: {uri: data/bank.csv, id_columns: [id], label: y}
store: {path: store}
""")
    party = load_party_config(cfg)
    assert party.datasets["credit"].uri == str(tmp_path / "data" / "bank.csv")
    assert party.store.path == tmp_path / "store"
    assert party.policy.allow_insecure is False and party.policy.min_intersection == 100


def test_errors_name_the_file_and_field(tmp_path):
    cfg = write(tmp_path / "partner.yaml", """
name: partner
insecure: true
policy: {min_intersection: lots}
""")
    with pytest.raises(ConfigError, match=r"partner.yaml: policy.min_intersection: Input should be a valid integer"):
        load_party_config(cfg)


def test_unknown_keys_are_errors(tmp_path):
    cfg = write(tmp_path / "p.yaml", "name: p\nlisten_adress: 1.2.3.4:5\n")
    with pytest.raises(ConfigError, match="listen_adress: Extra inputs are not permitted"):
        load_party_config(cfg)


def test_peers_require_an_explicit_transport(tmp_path):
    cfg = write(tmp_path / "p.yaml", "name: p\npeers: {q: {address: 'x:1'}}\n")
    with pytest.raises(ConfigError, match="set `tls`"):
        load_party_config(cfg)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_party_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_party_config(write(tmp_path / "bad.yaml", "name: [unclosed\n"))


def test_job_config_checks_parties_and_steps(tmp_path):
    job = load_job_config(write(tmp_path / "job.yaml", """
guest: bank
hosts: [partner]
datasets: {bank: credit, partner: credit}
steps:
  train: {algorithm: hetero_lr, params: {epochs: 2}}
  evaluate: {out_dir: out}
"""))
    assert job.roles == {"bank": "guest", "partner": "host"}
    assert job.steps.evaluate is not None and job.steps.evaluate.out_dir == tmp_path / "out"
    assert job.steps.psi is not None  # on by default

    with pytest.raises(ConfigError, match=r"job.yaml: datasets: .*no dataset named for \['partner'\]"):
        load_job_config(write(tmp_path / "job.yaml", "guest: bank\nhosts: [partner]\ndatasets: {bank: c}\n"))
    with pytest.raises(ConfigError, match="steps.train.algorithm"):
        load_job_config(write(tmp_path / "job.yaml", """
guest: bank
hosts: [partner]
datasets: {bank: c, partner: c}
steps: {train: {algorithm: xgboost}}
"""))


def test_environment_variables_fill_secrets_and_ports(tmp_path, monkeypatch):
    cfg = write(tmp_path / "partner.yaml", """
name: partner
listen: "127.0.0.1:${PARTNER_PORT:-7102}"
insecure: true
datasets:
  credit: {uri: "${PARTNER_DB_URL}?table=customers", id_columns: [id]}
""")
    monkeypatch.setenv("PARTNER_DB_URL", "mysql+pymysql://u:p%40ss@db/partner")
    party = load_party_config(cfg)
    assert party.listen == "127.0.0.1:7102"
    assert party.datasets["credit"].uri == "mysql+pymysql://u:p%40ss@db/partner?table=customers"
    monkeypatch.setenv("PARTNER_PORT", "9000")
    assert load_party_config(cfg).listen == "127.0.0.1:9000"
    monkeypatch.delenv("PARTNER_DB_URL")
    with pytest.raises(ConfigError, match=r"partner.yaml: datasets.credit.uri: environment variable PARTNER_DB_URL is not set"):
        load_party_config(cfg)


def test_the_readme_and_the_examples_spell_the_party_config_alike(tmp_path, monkeypatch):
    """What a new user copies from README.md loads, and says `id_columns` as the examples do."""
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PARTNER_DB_PASSWORD", "x")
    monkeypatch.setenv("PARTNER_DB_URL", "sqlite:///partner.db")
    readme_party = re.findall(r"```yaml\n(.*?)```", (repo / "README.md").read_text(), re.S)[0]
    (tmp_path / "partner.yaml").write_text(readme_party)
    texts = {"README.md": readme_party, **{f"examples/{n}": (repo / "examples" / n).read_text()
                                           for n in ("bank.yaml", "partner.yaml")}}
    for name, text in texts.items():
        assert re.search(r"^\s+id_columns: \[id\]$", text, re.M), name
        assert "id_column:" not in text, name
    configs = [load_party_config(tmp_path / "partner.yaml"),
               *(load_party_config(repo / "examples" / n) for n in ("bank.yaml", "partner.yaml"))]
    assert [c.datasets["credit"].id_columns for c in configs] == [["id"]] * 3

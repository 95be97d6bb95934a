"""Certificates for mutual TLS: a CA, party certificates, identities."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from vfl.crypto.tls import certificate_identity, check_party_name, create_ca, issue_party_cert
from vfl.errors import ConfigError


def test_party_certificate_is_signed_by_the_ca_and_names_the_party(tmp_path):
    ca_path = create_ca(tmp_path)
    files = issue_party_cert(tmp_path, "bank")
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert certificate_identity(files.cert.read_bytes()) == "bank"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bank"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usage} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600


def test_certificate_from_another_ca_does_not_verify(tmp_path):
    create_ca(tmp_path / "a")
    other = create_ca(tmp_path / "b")
    files = issue_party_cert(tmp_path / "a", "partner", tmp_path / "out")
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    with pytest.raises(InvalidSignature):  # same CA name, different key: the signature fails
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(other.read_bytes()))


def test_existing_ca_is_never_overwritten(tmp_path):
    create_ca(tmp_path)
    before = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        create_ca(tmp_path)
    assert (tmp_path / "ca.key").read_bytes() == before


def test_issue_without_ca_says_what_to_run(tmp_path):
    with pytest.raises(ConfigError, match="vfl certs ca"):
        issue_party_cert(tmp_path, "bank")


@pytest.mark.parametrize("name", ["", "-bank", "bank partner", "bank/1", "a" * 64, "bänk"])
def test_names_that_cannot_be_identities_are_refused(name):
    with pytest.raises(ConfigError, match="cannot be a certificate identity"):
        check_party_name(name)


def test_cli_creates_ca_and_certificates(tmp_path, capsys):
    from vfl.cli import main

    assert main(["certs", "ca", "--dir", str(tmp_path)]) == 0
    assert main(["certs", "issue", "bank", "partner_2", "--dir", str(tmp_path)]) == 0
    for name in ("bank", "partner_2"):
        assert certificate_identity((tmp_path / f"{name}.pem").read_bytes()) == name
    assert main(["certs", "ca", "--dir", str(tmp_path)]) == 2  # refuses to overwrite
    assert "refusing to overwrite" in capsys.readouterr().err


def test_extra_hosts_let_https_clients_verify_the_endpoint(tmp_path):
    import ipaddress

    from vfl.cli import main

    assert main(["certs", "ca", "--dir", str(tmp_path)]) == 0
    assert main(["certs", "issue", "bank", "--dir", str(tmp_path), "--host", "127.0.0.1",
                 "--host", "scoring.bank.example"]) == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "bank.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bank", "scoring.bank.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert certificate_identity((tmp_path / "bank.pem").read_bytes()) == "bank"  # identity unchanged

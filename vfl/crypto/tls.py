"""Certificates for mutual TLS between party services: a CA and one certificate per party.

Identity rule: a party's identity is its name, written as the certificate's subject common
name (CN) AND as its only DNS subject-alternative name. Servers read the CN of the client's
verified certificate; clients verify the server through the SAN (gRPC's target-name override
is set to the peer's name), so both ends prove who they are. Party names follow
vfl.parties.config.NAME_PATTERN (letters, digits, '_', '-', '.').

Keys are ECDSA P-256 (fast handshakes, supported by gRPC/BoringSSL). One certificate serves
both as server and client certificate (extended key usages serverAuth + clientAuth).

This is a simple federation CA: whoever runs `vfl certs ca` holds the CA key and issues
party certificates. In production, each organization would rather send a CSR; the CA key
must be kept offline either way.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vfl.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # as vfl.parties.config.NAME_PATTERN
CA_CERT = "ca.pem"
CA_KEY = "ca.key"
DEFAULT_DAYS = 365


@dataclass(frozen=True)
class TlsFiles:
    """Paths of one party's PEM files: the CA certificate it trusts, its certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(ca, cert, key) bytes; a missing file raises ConfigError naming it."""
        out = []
        for label, path in (("ca", self.ca), ("cert", self.cert), ("key", self.key)):
            try:
                out.append(Path(path).read_bytes())
            except OSError as exc:
                raise ConfigError(f"tls.{label}: cannot read {path}: {exc.strerror}") from exc
        return out[0], out[1], out[2]


def check_party_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"party name {name!r} cannot be a certificate identity: use letters, digits, "
            "'_', '-' and '.' (start with a letter or digit, at most 63 characters)"
        )
    return name


def create_ca(folder: Path, name: str = "vfl federation CA", days: int = 10 * DEFAULT_DAYS) -> Path:
    """Write ``ca.pem`` and ``ca.key`` (mode 0600) into `folder`; returns the ``ca.pem`` path.

    Refuses to overwrite an existing CA key (every issued certificate would become useless).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / CA_KEY).exists():
        raise ConfigError(f"{folder / CA_KEY} exists: refusing to overwrite a CA key")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(folder / CA_KEY, key)
    (folder / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return folder / CA_CERT


def issue_party_cert(
    ca_folder: Path, party: str, out_folder: Path | None = None, days: int = DEFAULT_DAYS,
    hosts: Sequence[str] = (),
) -> TlsFiles:
    """Issue ``<party>.pem`` / ``<party>.key`` signed by the CA in `ca_folder`.

    The identity is the party name (CN and a DNS name); `hosts` adds the DNS names or IP
    addresses that plain HTTPS clients (the guest's HTTP endpoint) connect to.
    """
    check_party_name(party)
    alt_names: list[x509.GeneralName] = [x509.DNSName(party)]
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    ca_folder = Path(ca_folder)
    out = Path(out_folder or ca_folder)
    out.mkdir(parents=True, exist_ok=True)
    try:
        ca_cert = x509.load_pem_x509_certificate((ca_folder / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((ca_folder / CA_KEY).read_bytes(), None)
    except OSError as exc:
        raise ConfigError(
            f"no CA in {ca_folder} ({exc.strerror}); run `vfl certs ca` first"
        ) from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{ca_folder / CA_KEY} is not an EC key made by `vfl certs ca`")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(out / f"{party}.key", key)
    (out / f"{party}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TlsFiles(ca_folder / CA_CERT, out / f"{party}.pem", out / f"{party}.key")


def certificate_identity(cert_pem: bytes) -> str:
    """The party name a certificate speaks for (its subject CN)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ConfigError("certificate has no common name, so it names no party")
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)

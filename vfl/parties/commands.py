"""`vfl certs`: make a CA and party certificates."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_commands(subparsers: Any) -> None:
    """Register the `certs` subcommand on the `vfl` parser's subparsers."""
    certs = subparsers.add_parser("certs", help="create a CA and per-party TLS certificates")
    actions = certs.add_subparsers(dest="certs_command", required=True)
    ca = actions.add_parser("ca", help="create a CA (ca.pem, ca.key) in a folder")
    ca.add_argument("--dir", type=Path, required=True, help="folder for ca.pem and ca.key")
    ca.add_argument("--name", default="vfl federation CA", help="the CA's common name")
    ca.add_argument("--days", type=int, default=3650)
    ca.set_defaults(func=cmd_certs_ca)
    issue = actions.add_parser("issue", help="issue <name>.pem / <name>.key for parties")
    issue.add_argument("names", nargs="+", help="party names (the certificate identities)")
    issue.add_argument("--dir", type=Path, required=True, help="folder holding ca.pem and ca.key")
    issue.add_argument("--out", type=Path, default=None, help="output folder (default: --dir)")
    issue.add_argument("--days", type=int, default=365)
    issue.add_argument("--host", action="append", default=[], dest="hosts",
                       help="a DNS name or IP address HTTPS clients use to reach this party "
                            "(repeatable; the party name is always included)")
    issue.set_defaults(func=cmd_certs_issue)


def cmd_certs_ca(args: argparse.Namespace) -> int:
    from vfl.crypto.tls import create_ca

    path = create_ca(args.dir, name=args.name, days=args.days)
    print(f"CA certificate: {path}\nCA key: {path.with_name('ca.key')} (keep it offline)")
    return 0


def cmd_certs_issue(args: argparse.Namespace) -> int:
    from vfl.crypto.tls import issue_party_cert

    for name in args.names:
        files = issue_party_cert(args.dir, name, args.out, days=args.days, hosts=args.hosts)
        print(f"{name}: certificate {files.cert}, key {files.key}")
    return 0

"""`vfl health` (ask this party's running service whether it answers, or with ``--ready``
whether it is ready for traffic) and `vfl certs` (make a CA and party certificates)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_commands(subparsers: Any) -> None:
    """Register the `health` and `certs` subcommands on the `vfl` parser's subparsers."""
    health = subparsers.add_parser(
        "health", help="ask this party's running service for its health (exit 0 if it answers)",
        description="Calls the Health RPC of the service at the config's `listen` address with the "
                    "party's own certificate: the container and Kubernetes health check.")
    health.add_argument("--config", type=Path, required=True, help="the party's YAML")
    health.add_argument("--ready", action="store_true",
                        help="readiness instead (models loaded, ...): GET /v1/ready on the metrics port "
                             "(metrics.listen) with the party's own certificate; exit 1 when not ready")
    health.set_defaults(func=cmd_health)

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


def cmd_health(args: argparse.Namespace) -> int:
    from vfl.parties.config import load_party_config
    from vfl.parties.federation import Federation

    if args.ready:
        from vfl.parties.metrics_http import ask_ready

        ready, answer = ask_ready(load_party_config(args.config, datasets=False))
        print(json.dumps(answer))
        return 0 if ready else 1
    fed = Federation(load_party_config(args.config))
    try:
        print(json.dumps(fed.health(fed.name)))
    finally:
        fed.close()
    return 0


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

"""`vfl serve` (run this party's service), `vfl health` (ask it whether it answers) and `vfl certs`
(make a CA and party certificates)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from vfl.errors import ConfigError

log = logging.getLogger("vfl.serve")


def add_commands(subparsers: Any) -> None:
    """Register the `serve` and `certs` subcommands on the `vfl` parser's subparsers."""
    serve = subparsers.add_parser("serve", help="run this party's service (gRPC, mutual TLS)")
    serve.add_argument("--config", type=Path, required=True, help="the party's YAML")
    serve.add_argument(
        "--insecure", action="store_true",
        help="confirm plaintext transport (the config must also say insecure: true); "
             "never outside local experiments",
    )
    serve.set_defaults(func=cmd_serve)

    health = subparsers.add_parser(
        "health", help="ask this party's running service for its health (exit 0 if it answers)",
        description="Calls the Health RPC of the service at the config's `listen` address with the "
                    "party's own certificate: the container and Kubernetes health check.")
    health.add_argument("--config", type=Path, required=True, help="the party's YAML")
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


def cmd_serve(args: argparse.Namespace) -> int:
    from vfl.config import load_party_config
    from vfl.parties.service import PartyService

    config = load_party_config(args.config)
    if config.tls is None and not args.insecure:
        raise ConfigError(
            f"{args.config}: no `tls` section; plaintext transport needs both `insecure: true` "
            "and `vfl serve --insecure`"
        )
    if config.tls is not None and args.insecure:
        raise ConfigError(f"{args.config}: --insecure given but the config has a `tls` section")
    service = PartyService(config).start()
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping party '%s'", signum, config.name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"vfl serve: party '{config.name}' listening on {config.listen}", flush=True)
    stopping.wait()
    service.stop()
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from vfl.config import load_party_config
    from vfl.parties.grpc_channel import Federation

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

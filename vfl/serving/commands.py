"""`vfl serve` (run this party's service, with serving's RPCs), `vfl score` (batch scoring
through the hosts' services) and `vfl models` (this party's store)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from vfl.errors import ConfigError
from vfl.names import name_argument

log = logging.getLogger("vfl.serve")


def add_commands(subparsers: Any) -> None:
    """Register the `serve`, `score` and `models` subcommands on the `vfl` parser's subparsers."""
    serve = subparsers.add_parser("serve", help="run this party's service (gRPC, mutual TLS)")
    serve.add_argument("--config", type=Path, required=True, help="the party's YAML")
    serve.add_argument(
        "--insecure", action="store_true",
        help="confirm plaintext transport (the config must also say insecure: true); "
             "never outside local experiments",
    )
    serve.set_defaults(func=cmd_serve)

    score = subparsers.add_parser(
        "score", help="batch-score ids from a table (guest; hosts over mTLS); resumable by chunk",
        description="A rerun with the same sink after an interruption (Ctrl-C, a failed host) "
                    "scores only the chunks not yet scored.")
    score.add_argument("--config", type=Path, required=True, help="the guest's party YAML")
    score.add_argument("--model", required=True, type=name_argument("--model"), help="model id")
    score.add_argument("--version", default=None, type=name_argument("--version"),
                       help="default: the production version")
    score.add_argument("--source", required=True, help="URI of the ids (and optionally guest features)")
    score.add_argument("--sink", required=True,
                       help="URI to write id, score, missing, model_version, scored_at to (replaced "
                            "once every chunk is scored)")
    score.add_argument("--id-column", default=None, help="default: the served dataset's id column")
    score.add_argument("--chunk-rows", type=int, default=50_000)
    score.add_argument("--retries", type=int, default=2, help="retries of a failed chunk")
    score.add_argument("--retry-delay", type=float, default=1.0, help="seconds before the first retry (doubling)")
    score.add_argument("--restart", action="store_true",
                       help="discard the saved progress of an interrupted run on this sink")
    score.set_defaults(func=cmd_score)

    models = subparsers.add_parser(
        "models", help="list/show/promote/rollback/delete model versions",
        description="This party's model store (no dataset is opened). promote and rollback "
                    "with --federated, run on the guest, move every party of the model together.")
    models.add_argument("--config", type=Path, required=True, help="the party's YAML")
    actions = models.add_subparsers(dest="models_command", required=True)
    ls = actions.add_parser("list", help="every version of every model (or of one)")
    ls.add_argument("model_id", nargs="?", type=name_argument("model_id"))
    ls.set_defaults(func=cmd_models_list)
    chosen = [ls]
    for name, help_text in (("show", "one version's record (default: production)"),
                            ("promote", "serve this version"), ("delete", "delete a non-production version")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("model_id", type=name_argument("model_id"))
        action.add_argument("version", nargs="?" if name == "show" else None, type=name_argument("version"))
        action.set_defaults(func=cmd_models_action, action=name)
        chosen.append(action)
    rollback = actions.add_parser("rollback", help="serve again the previous production version")
    rollback.add_argument("model_id", type=name_argument("model_id"))
    rollback.set_defaults(func=cmd_models_action, action="rollback", version=None)
    chosen.append(rollback)
    for action in chosen:
        action.add_argument("--json", action="store_true", help="JSON instead of a table")
        if action.prog.split()[-1] in ("promote", "rollback"):
            action.add_argument("--federated", action="store_true",
                                help="on the guest: move every party of the model together "
                                     "(each host's policy must allow protocol 'promote')")


LIST_COLUMNS = ["model_id", "version", "stage", "role", "kind", "peers", "created_at", "promoted_at",
                "auc", "ks"]


def _config(config_path: Path) -> Any:
    from vfl.parties.config import load_party_config

    return load_party_config(config_path, datasets=False)  # the store only: no dataset credentials


def _store(config_path: Path) -> Any:
    from vfl.store.models import ModelStore

    return ModelStore.of(_config(config_path))


def _shown(record: Any) -> dict[str, Any]:
    from vfl.cli_output import iso

    return {**record.summary(), "created_at": iso(record.created_at), "promoted_at": iso(record.promoted_at)}


def cmd_models_list(args: argparse.Namespace) -> int:
    from vfl.cli_output import print_records

    print_records([_shown(r) for r in _store(args.config).list(args.model_id)], LIST_COLUMNS, args.json)
    return 0


def cmd_models_action(args: argparse.Namespace) -> int:
    from vfl.cli_output import print_record, print_records

    if getattr(args, "federated", False):
        return _federated(args)
    store = _store(args.config)
    if args.action == "show":
        record = store.get(args.model_id, args.version)
        print_record({**_shown(record), "party": record.party, "digest": record.digest,
                      "metrics": record.metrics}, args.json)
    elif args.action == "promote":
        print_records([_shown(store.promote(args.model_id, args.version))], LIST_COLUMNS, args.json)
    elif args.action == "rollback":
        print_records([_shown(store.rollback(args.model_id))], LIST_COLUMNS, args.json)
    else:
        store.delete(args.model_id, args.version)
        print_record({"deleted": {"model_id": args.model_id, "version": args.version}}, args.json)
    return 0


def _federated(args: argparse.Namespace) -> int:
    """promote/rollback --federated: every party of the model moves (see vfl.serving.stages)."""
    import dataclasses

    from vfl.cli_output import print_records
    from vfl.serving.stages import move_all

    moved = move_all(_config(args.config), args.model_id, args.action, args.version)
    if not moved:
        print(f"vfl models rollback: warning: model '{args.model_id}' has no earlier production "
              "version to roll back to; nothing changed", file=sys.stderr)
        return 1
    print_records([dataclasses.asdict(m) for m in moved], ["party", "role", "previous", "version"], args.json)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from vfl.parties.config import load_party_config
    from vfl.parties.context import ProgressEvent
    from vfl.parties.progress import console_display
    from vfl.serving.online import batch_score

    config = load_party_config(args.config)
    done: list[Any] = []
    try:
        with console_display() as show:  # closed (its last line printed) before the interrupt note
            def progress(chunks: int, s: Any) -> None:
                done[:] = [s]
                show(ProgressEvent(config.name, "", "score", s.rows, s.total or 0,
                                   {"unit": "rows", "chunks": chunks}))

            summary = batch_score(config, args.model, args.source, args.sink, id_column=args.id_column,
                                  chunk_rows=args.chunk_rows, retries=args.retries,
                                  retry_delay=args.retry_delay, version=args.version,
                                  restart=args.restart, on_progress=progress)
    except KeyboardInterrupt:
        saved = f"{done[0].chunks} chunk(s) ({done[0].rows} rows) saved" if done else "nothing saved"
        print(f"vfl score: interrupted; {saved}; the sink is unchanged. Rerun the same command "
              "to continue", file=sys.stderr, flush=True)
        return 130
    if summary.duplicates_dropped:
        print(f"[score] {summary.duplicates_dropped} repeated id(s) in the source scored once "
              "(the dataset's duplicates: keep_first)", file=sys.stderr)
    print(json.dumps({"model_id": args.model, "rows": summary.rows, "scored": summary.scored,
                      "missing": summary.missing, "chunks": summary.chunks,
                      "resumed_chunks": summary.resumed, "duplicates_dropped": summary.duplicates_dropped,
                      "retries": summary.retries, "seconds": round(summary.seconds, 3),
                      "rows_per_second": round(summary.rows_per_second, 1)}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from vfl.parties.config import load_party_config
    from vfl.parties.discovery import close_registries, registry_for
    from vfl.serving.grpc_api import party_service
    from vfl.store.models import ModelStore

    config = load_party_config(args.config)
    if config.tls is None and not args.insecure:
        raise ConfigError(
            f"{args.config}: no `tls` section; plaintext transport needs both `insecure: true` "
            "and `vfl serve --insecure`"
        )
    if config.tls is not None and args.insecure:
        raise ConfigError(f"{args.config}: --insecure given but the config has a `tls` section")
    registry = registry_for(config)  # an unreachable registry stops here, naming its address
    service = party_service(config)
    service.readiness.add("registry", lambda: None if registry.healthy() else "registry session lost")
    service.start()
    store = ModelStore.of(config)
    registry.register(config.registry.advertise or config.listen, lambda: replica_status(config, store))
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping party '%s'", signum, config.name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"vfl serve: party '{config.name}' listening on {config.listen}", flush=True)
    stopping.wait()
    close_registries()  # first: no new requests are routed here while it drains
    service.stop()
    return 0


def replica_status(config: Any, store: Any) -> dict[str, Any]:
    """What this replica announces in the registry: the version of each model it serves."""
    from vfl.errors import VflError

    models = {}
    for model_id in config.serving.models:
        try:
            models[model_id] = store.get(model_id).version
        except VflError:
            continue  # no production version yet
    return {"models": models, "health": "ok"}

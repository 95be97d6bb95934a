"""`vfl score` (batch scoring through the hosts' services) and `vfl models` (this party's store)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vfl.names import name_argument


def add_commands(subparsers: Any) -> None:
    """Register the `score` and `models` subcommands on the `vfl` parser's subparsers."""
    score = subparsers.add_parser("score", help="batch-score ids from a table (guest; hosts over mTLS)")
    score.add_argument("--config", type=Path, required=True, help="the guest's party YAML")
    score.add_argument("--model", required=True, type=name_argument("--model"), help="model id")
    score.add_argument("--version", default=None, type=name_argument("--version"),
                       help="default: the production version")
    score.add_argument("--source", required=True, help="URI of the ids (and optionally guest features)")
    score.add_argument("--sink", required=True, help="URI to write id, score, missing to (replaced)")
    score.add_argument("--id-column", default=None, help="default: the served dataset's id column")
    score.add_argument("--chunk-rows", type=int, default=50_000)
    score.add_argument("--retries", type=int, default=2, help="retries of a failed chunk")
    score.add_argument("--retry-delay", type=float, default=1.0, help="seconds before the first retry (doubling)")
    score.set_defaults(func=cmd_score)

    models = subparsers.add_parser("models", help="list/show/promote/rollback/delete model versions")
    models.add_argument("--config", type=Path, required=True, help="the party's YAML")
    actions = models.add_subparsers(dest="models_command", required=True)
    ls = actions.add_parser("list", help="every version of every model (or of one)")
    ls.add_argument("model_id", nargs="?", type=name_argument("model_id"))
    ls.set_defaults(func=cmd_models_list)
    for name, help_text in (("show", "one version's record (default: production)"),
                            ("promote", "serve this version"), ("delete", "delete a non-production version")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("model_id", type=name_argument("model_id"))
        action.add_argument("version", nargs="?" if name == "show" else None, type=name_argument("version"))
        action.set_defaults(func=cmd_models_action, action=name)
    rollback = actions.add_parser("rollback", help="serve again the previous production version")
    rollback.add_argument("model_id", type=name_argument("model_id"))
    rollback.set_defaults(func=cmd_models_action, action="rollback", version=None)


def _store(config_path: Path) -> Any:
    from vfl.config import load_party_config
    from vfl.serving.store import ModelStore

    config = load_party_config(config_path)
    return ModelStore.of(config)


def cmd_models_list(args: argparse.Namespace) -> int:
    for record in _store(args.config).list(args.model_id):
        print(json.dumps(record.summary()))
    return 0


def cmd_models_action(args: argparse.Namespace) -> int:
    store = _store(args.config)
    if args.action == "show":
        record = store.get(args.model_id, args.version)
        print(json.dumps({**record.summary(), "party": record.party, "digest": record.digest,
                          "metrics": record.metrics,
                          "promoted_at": record.promoted_at.isoformat() if record.promoted_at else None},
                         indent=2))
    elif args.action == "promote":
        print(json.dumps(store.promote(args.model_id, args.version).summary()))
    elif args.action == "rollback":
        print(json.dumps(store.rollback(args.model_id).summary()))
    else:
        store.delete(args.model_id, args.version)
        print(json.dumps({"deleted": {"model_id": args.model_id, "version": args.version}}))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from vfl.config import load_party_config
    from vfl.serving.online import batch_score

    config = load_party_config(args.config)

    def progress(chunks: int, s: Any) -> None:
        print(f"[score] chunk {chunks}: {s.rows} rows, {s.scored} scored, "
              f"{s.rows_per_second:,.0f} rows/s", file=sys.stderr, flush=True)

    summary = batch_score(config, args.model, args.source, args.sink, id_column=args.id_column,
                          chunk_rows=args.chunk_rows, retries=args.retries, retry_delay=args.retry_delay,
                          version=args.version,
                          on_progress=progress)
    print(json.dumps({"model_id": args.model, "rows": summary.rows, "scored": summary.scored,
                      "missing": summary.missing, "chunks": summary.chunks, "retries": summary.retries,
                      "seconds": round(summary.seconds, 3),
                      "rows_per_second": round(summary.rows_per_second, 1)}))
    return 0

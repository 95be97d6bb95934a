"""The `vfl` command: run jobs, serve a party, make certificates, evaluate and score."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from vfl.errors import VflError
from vfl.parties.context import ProgressEvent


class ProgressPrinter:
    """One line per step and party, at most every `interval` seconds, always at completion."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}

    def __call__(self, event: ProgressEvent) -> None:
        key = (event.party, event.step)
        now = time.monotonic()
        if event.done < event.total and now - self._last.get(key, 0.0) < self.interval:
            return
        self._last[key] = now
        info = " ".join(f"{k}={_fmt(v)}" for k, v in event.info.items())
        print(f"[{event.party} {event.step}] {event.done}/{event.total} {info}".rstrip(),
              file=sys.stderr, flush=True)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cmd_run(args: argparse.Namespace) -> int:
    from vfl.config import load_job_config, load_party_config
    from vfl.runner import run_federated, run_simulated

    job = load_job_config(args.job)
    if args.party is None:
        outcome = run_simulated(job, on_progress=ProgressPrinter())
    else:
        submit = {"auto": None, "submit": True, "embedded": False}[args.mode]
        outcome = run_federated(job, load_party_config(args.party), on_progress=ProgressPrinter(),
                                submit=submit)
    print(json.dumps(_summary(outcome), indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vfl.demo import run_demo

    summary = run_demo(data_dir=args.data_dir, out_dir=args.out, key_bits=args.key_bits,
                       on_progress=ProgressPrinter())
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vfl.evaluation import main_evaluate

    metrics = main_evaluate(args.scores, args.label, args.score, args.out)
    print(json.dumps({k: metrics[k] for k in ("auc", "ks") if k in metrics}, indent=2))
    return 0


def _summary(outcome: object) -> dict[str, object]:
    from vfl.jobs import JobOutcome

    assert isinstance(outcome, JobOutcome)
    headline: dict[str, object] = {k: outcome.metrics[k] for k in ("auc", "ks", "ks_binned") if k in outcome.metrics}
    return {
        "job_id": outcome.job_id,
        "intersection_size": outcome.intersection_size,
        **headline,
        "report": outcome.report,
        "model_id": outcome.model_id,
        "scored": outcome.scored,
        "seconds": outcome.seconds,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfl", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run a job YAML: across party services with --party, else simulated here",
        description="With --party (the guest's party YAML) the job runs across the parties' "
                    "services; without, every party of the job's `parties` runs in this process.")
    run.add_argument("job", type=Path)
    run.add_argument("--party", type=Path, default=None,
                     help="the guest's party YAML: run across the party services")
    run.add_argument("--mode", choices=("auto", "submit", "embedded"), default="auto",
                     help="submit: hand the job to the guest's running `vfl serve`; embedded: run "
                          "the guest's service inside this command; auto: submit if it answers")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="bank + partner demo on ../shared/data (or a bundled data set)")
    demo.add_argument("--data-dir", type=Path, default=None, help="default: ../shared/data if present")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--key-bits", type=int, default=2048)
    demo.set_defaults(func=_cmd_demo)

    ev = sub.add_parser("evaluate", help="metrics + HTML report from a table of labels and scores")
    ev.add_argument("scores", help="URI or path of a table with label and score columns")
    ev.add_argument("--label", default="y")
    ev.add_argument("--score", default="score")
    ev.add_argument("--out", type=Path, default=Path("runs/evaluate"))
    ev.set_defaults(func=_cmd_evaluate)

    from vfl.parties.commands import add_commands  # `vfl serve`, `vfl certs`
    from vfl.parties.job_commands import add_commands as add_job_commands  # `vfl jobs`
    from vfl.serving.commands import (
        add_commands as add_serving_commands,  # `vfl score`, `vfl models`
    )

    add_commands(sub)
    add_job_commands(sub)
    add_serving_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except VflError as exc:
        print(f"vfl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback
        print(f"vfl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

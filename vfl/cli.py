"""The `vfl` command: run jobs, serve a party, make certificates, evaluate and score."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vfl.errors import VflError
from vfl.parties.progress import console_display

if TYPE_CHECKING:
    from vfl.config import JobConfig

FAST_KEY_BITS_WARNING = ("--key-bits {bits}: Paillier keys below 2048 bits are for trying the "
                         "walkthrough only, NOT for production")


def _cmd_run(args: argparse.Namespace) -> int:
    from vfl.config import load_job_config
    from vfl.parties.config import load_party_config
    from vfl.runner import run_federated, run_simulated

    party = None if args.party is None else load_party_config(args.party)
    if party is not None:  # the party's plugins may register the algorithm the job names
        from vfl.parties import registry

        registry.load_plugins(party.plugins)
    job = load_job_config(args.job)
    if args.key_bits is not None:
        job = with_key_bits(job, args.key_bits)
    with console_display() as show:
        if party is None:
            outcome = run_simulated(job, on_progress=show)
        else:
            submit = {"auto": None, "submit": True, "embedded": False}[args.mode]
            outcome = run_federated(job, party, on_progress=show, submit=submit)
    print(json.dumps(_summary(outcome), indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vfl.demo import run_demo

    if args.key_bits < 2048:
        print(FAST_KEY_BITS_WARNING.format(bits=args.key_bits), file=sys.stderr)
    with console_display() as show:
        summary = run_demo(data_dir=args.data_dir, out_dir=args.out, key_bits=args.key_bits,
                           on_progress=show)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vfl.evaluation import main_evaluate

    metrics = main_evaluate(args.scores, args.label, args.score, args.out)
    print(json.dumps({k: metrics[k] for k in ("auc", "ks") if k in metrics}, indent=2))
    return 0


def with_key_bits(job: JobConfig, bits: int) -> JobConfig:
    """`job` with HE-LR keys of `bits` bits (warned about below 2048: not for production)."""
    from vfl.algorithms import registry
    from vfl.errors import ConfigError

    train = job.steps.train
    if train is None or not registry.get(train.algorithm).accepts_key_bits:
        takers = " or ".join(n for n in registry.names() if registry.get(n).accepts_key_bits)
        raise ConfigError(f"--key-bits: the job has no {takers} train step")
    if bits < 2048:
        print(FAST_KEY_BITS_WARNING.format(bits=bits), file=sys.stderr)
    steps = job.steps.model_copy(update={"train": train.model_copy(
        update={"params": {**train.params, "key_bits": bits}})})
    return job.model_copy(update={"steps": steps})


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
    run.add_argument("--key-bits", type=int, default=None,
                     help="Paillier key size of a hetero_lr or secureboost job, overriding its params; 1024 makes "
                          "a walkthrough ~4x faster but is NOT for production (default: the job's, 2048)")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="bank + partner demo on ../shared/data (or a bundled data set)")
    demo.add_argument("--data-dir", type=Path, default=None, help="default: ../shared/data if present")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--key-bits", type=int, default=2048,
                      help="Paillier key size; 1024 is quicker, NOT for production")
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

"""``qualitas train CONFIG.yaml [-o key=value ...] [--resume RUN] [--splits N] [--out DIR]``."""

from __future__ import annotations

import argparse
import json

HELP = "train a quality, classification or segmentation model from a YAML config"
"""One line for ``qualitas --help``."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help=HELP,
        description="Train a quality model from one YAML config (docs/configs.md).",
    )
    p.add_argument("config", nargs="?", help="YAML config (optional with --resume: the run's config.yaml)")
    p.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. -o trainer.max_epochs=3 -o data.batch_size=8",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR_OR_CKPT",
        help="continue a run (weights, optimizer, scheduler, epoch) from its last checkpoint",
    )
    p.add_argument(
        "--splits",
        type=int,
        default=0,
        metavar="N",
        help="train on N seeded random splits; report median and mean ± std of SROCC/PLCC",
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: run.out/run.name-<time>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qualitas.cli.common import log_messages_to_stderr
    from qualitas.errors import UsageError
    from qualitas.training.config import load_config
    from qualitas.training.run import config_for_resume, format_splits_summary, train, train_splits

    log_messages_to_stderr()
    if args.config is None and args.resume is None:
        raise UsageError("give a CONFIG file (or --resume RUN_DIR)")
    if args.resume is not None:
        if args.splits:
            raise UsageError("--resume and --splits cannot be combined")
        cfg = config_for_resume(args.config, args.resume, args.override)
    else:
        cfg = load_config(args.config, args.override)
    if args.splits and cfg.task != "quality":
        raise UsageError(
            f"--splits repeats quality-model splits of a manifest; task {cfg.task} has fixed lists"
        )
    if args.splits:
        summary = train_splits(cfg, args.splits, out=args.out)
        print(format_splits_summary(summary))
        print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
        return 0
    result = train(cfg, out=args.out, resume=args.resume)
    print(f"run directory: {result.run_dir}")

    # Scalars only: task runs also hold per-class lists and a confusion matrix (metrics.json).
    def scalars(fig: dict) -> dict:
        return {k: v for k, v in fig.items() if not isinstance(v, list)}

    print(json.dumps({"val": scalars(result.metrics["val"]), "test": scalars(result.metrics["test"])}))
    return 0

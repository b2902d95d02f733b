"""``qualitas pretrain CONFIG.yaml [-o key=value ...] [--resume RUN] [--out DIR]``."""

from __future__ import annotations

import argparse
import json

HELP = "self-supervised pretraining of a backbone on unlabelled images/video frames"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help=HELP,
        description=(
            "Self-supervised pretraining (SimCLR, or CONTRIQUE-style over synthetic distortion classes) "
            "of the config's model backbone on unlabelled media; writes a clean backbone.pt that any "
            "model.pretrained_path can load (docs/pretraining.md)."
        ),
    )
    p.add_argument("config", nargs="?", help="YAML config (optional with --resume: the run's config.yaml)")
    p.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. -o pretrain.method=contrique -o trainer.max_epochs=3",
    )
    p.add_argument(
        "--resume", metavar="RUN_DIR_OR_CKPT", help="continue a pretraining run from its last checkpoint"
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: run.out/run.name-<time>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qualitas.cli.common import config_from_args, log_messages_to_stderr
    from qualitas.training.pretrain import pretrain

    log_messages_to_stderr()
    cfg = config_from_args(args)
    result = pretrain(cfg, out=args.out, resume=args.resume)
    print(f"run directory: {result.run_dir}")
    keys = ("method", "epochs", "loss_first_epoch", "loss_last_epoch", "backbone_file")
    print(json.dumps({k: result.metrics.get(k) for k in keys}))
    return 0

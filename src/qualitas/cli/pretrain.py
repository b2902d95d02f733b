"""``qualitas pretrain CONFIG.yaml [-o key=value ...] [--resume RUN] [--out DIR]``."""

from __future__ import annotations

import argparse
import json
import logging

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
    from qualitas.errors import UsageError
    from qualitas.training.config import load_config
    from qualitas.training.pretrain import pretrain
    from qualitas.training.run import config_for_resume

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("qualitas").addHandler(handler)
    logging.getLogger("qualitas").setLevel(logging.INFO)
    if args.config is None and args.resume is None:
        raise UsageError("give a CONFIG file (or --resume RUN_DIR)")
    if args.resume is not None:
        cfg = config_for_resume(args.config, args.resume, args.override)
    else:
        cfg = load_config(args.config, args.override)
    result = pretrain(cfg, out=args.out, resume=args.resume)
    print(f"run directory: {result.run_dir}")
    keys = ("method", "epochs", "loss_first_epoch", "loss_last_epoch", "backbone_file")
    print(json.dumps({k: result.metrics.get(k) for k in keys}))
    return 0

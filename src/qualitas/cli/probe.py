"""``qualitas probe BACKBONE --manifest M [-o key=value ...] [--out DIR]``: linear probe."""

from __future__ import annotations

import argparse
import json

HELP = "linear probe of a frozen backbone on a labelled manifest (SROCC/PLCC or top-1)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help=HELP,
        description=(
            "Evaluate a representation without fine-tuning: frozen backbone, ridge head fit in closed form "
            "on a labelled manifest. Quality rows (mos) report SROCC/PLCC (this is trainer.method=probe); "
            "rows with a 'label' and no mos report top-1 accuracy (docs/pretraining.md)."
        ),
    )
    p.add_argument(
        "backbone",
        metavar="RUN_OR_BACKBONE",
        help="a qualitas pretrain run dir, a weights file (with --arch), or a timm backbone name (random init)",
    )
    p.add_argument("--manifest", required=True, help="labelled manifest (JSONL/CSV, docs/manifest.md)")
    p.add_argument("--arch", help="timm architecture of a weights file without backbone.json")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="with a timm name: its offline ImageNet weights (tf_efficientnet_lite0/1/2) instead of random init",
    )
    p.add_argument(
        "--pool", choices=("stats", "avg"), help="feature pooling (default stats: every stage's mean+std)"
    )
    p.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. -o data.input_size.mode=resize -o data.input_size.size=[224,224]",
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/probe-<time>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qualitas.cli.common import log_messages_to_stderr
    from qualitas.training.linear_probe import format_result, resolve_backbone, run_probe

    log_messages_to_stderr()
    ref = resolve_backbone(args.backbone, arch=args.arch, pretrained=args.pretrained, pool=args.pool)
    res = run_probe(ref, args.manifest, args.override, out=args.out)
    print(format_result(res))
    print(json.dumps({k: res[k] for k in ("task", "val", "test")}))
    return 0

"""``qualitas eval RUN_DIR_OR_CKPT [--manifest M --root R] [--split S] [--out results.json]``."""

from __future__ import annotations

import argparse
import json

HELP = "evaluate a trained model on a manifest (SROCC/PLCC/KROCC/RMSE + plot)"
"""One line for ``qualitas --help``."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help=HELP,
        description="Evaluate a trained run: metrics, per-item predictions and a scatter plot "
        "(prediction vs MOS with the fitted logistic curve).",
    )
    p.add_argument("path", metavar="RUN_DIR_OR_CKPT")
    p.add_argument("--manifest", help="manifest to evaluate on (default: the run's own, test split)")
    p.add_argument("--root", help="folder the manifest paths are relative to (default: the manifest's)")
    p.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        help="subset to score (default: test for the run's manifest, all for another)",
    )
    p.add_argument("--out", default="results.json", help="results JSON; the plot goes next to it (.png)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qualitas.training.predict import evaluate_run

    res = evaluate_run(
        args.path,
        manifest=args.manifest,
        root=args.root,
        split=args.split,
        out=args.out,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
    )
    print(json.dumps({"n": res["n"], "split": res["split"], **res["metrics"]}))
    print(f"results: {args.out}" + (f", plot: {res['plot']}" if "plot" in res else ""))
    return 0

"""``qualitas eval RUN_DIR_OR_CKPT_OR_CONFIG [--manifest M --root R] [--split S] [--out results.json]``.

Quality runs: correlations + scatter plot. Classification / segmentation runs (or a config
with ``--weights``): the task's figures, per-item predictions, confusion matrix, ``--show-dir``
pictures, ``--fuse-conv-bn`` (docs/tasks.md).
"""

from __future__ import annotations

import argparse
import json

HELP = "evaluate a trained model: SROCC/PLCC (quality), top-1/mIoU (classification/segmentation), COCO mAP (detection)"
"""One line for ``qualitas --help``."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help=HELP,
        description="Evaluate a trained run. Quality models: metrics, per-item predictions and a scatter "
        "plot (prediction vs MOS with the fitted logistic curve). Classification/segmentation: top-1/top-5, "
        "per-class precision/recall/F1 and a confusion matrix, or mIoU/per-class IoU/pixel accuracy "
        "(counted at each label mask's own resolution).",
    )
    p.add_argument(
        "path", metavar="RUN_OR_CONFIG", help="run dir, .ckpt, or a task config (.yaml) with --weights"
    )
    p.add_argument("--weights", metavar="RUN_OR_CKPT", help="weights to evaluate with a CONFIG file")
    p.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the evaluated data (task models), e.g. -o data.test=lists/other.txt",
    )
    p.add_argument("--manifest", help="quality: manifest to evaluate on (default: the run's own, test split)")
    p.add_argument(
        "--root", help="quality: folder the manifest paths are relative to (default: the manifest's)"
    )
    p.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        help="subset to score (default: test when there is one; quality: all for another manifest)",
    )
    p.add_argument(
        "--out",
        default="results.json",
        help="results JSON (figures + per-item predictions); the plot goes next to it (.png). Detectors: "
        "the COCO results list, figures in <out>.metrics.json",
    )
    p.add_argument(
        "--show-dir", help="task models: write each image with its prediction drawn on into this folder"
    )
    p.add_argument("--max-show", type=int, default=50, help="at most N pictures in --show-dir (default 50)")
    p.add_argument(
        "--score-min", type=float, default=0.3, help="detectors: draw detections scoring at least this (0.3)"
    )
    p.add_argument(
        "--fuse-conv-bn", action="store_true", help="fold BatchNorm into convolutions first (faster)"
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qualitas.errors import UsageError
    from qualitas.training.config import DETECTION_TASKS
    from qualitas.training.vision_eval import evaluate_task, scalar_figures, task_of

    task = task_of(args.path)
    if task in DETECTION_TASKS:
        if args.manifest or args.root or args.split == "all" or args.fuse_conv_bn:
            raise UsageError("--manifest/--root/--split all/--fuse-conv-bn do not apply to detectors")
        from qualitas.training.detection_eval import evaluate_detection

        res = evaluate_detection(
            args.path,
            weights=args.weights,
            overrides=args.override,
            split=args.split,
            out=args.out,
            show_dir=args.show_dir,
            max_show=args.max_show,
            score_min=args.score_min,
            batch_size=args.batch_size,
            device=args.device,
        )
        figures = {k: v for k, v in res["metrics"].items() if k != "per_class"}
        print(json.dumps({"split": res["split"], **figures}))
        print(
            f"COCO results: {res['out']}, figures: {res['metrics_file']}"
            + (f", pictures: {args.show_dir}" if args.show_dir else "")
        )
        return 0
    if task != "quality":
        if args.manifest or args.root:
            raise UsageError(
                "--manifest/--root are for quality models; change task data with -o data.test=..."
            )
        if args.split == "all":
            raise UsageError("--split all is for quality manifests; choose train, val or test")
        res = evaluate_task(
            args.path,
            weights=args.weights,
            overrides=args.override,
            split=args.split,
            out=args.out,
            show_dir=args.show_dir,
            max_show=args.max_show,
            fuse=args.fuse_conv_bn,
            batch_size=args.batch_size,
            num_workers=args.workers,
            device=args.device,
        )
        kind = (
            "segmentation"
            if res["task"] == "segmentation"
            else ("multilabel" if "map" in res["metrics"] else "classification")
        )
        print(json.dumps({"split": res["split"], **scalar_figures(kind, res["metrics"])}))
        print(
            f"results: {res['out']}"
            + (f", confusion matrix: {res['plot']}" if "plot" in res else "")
            + (f", pictures: {args.show_dir}" if args.show_dir else "")
        )
        return 0
    if args.weights or args.override or args.show_dir or args.fuse_conv_bn:
        raise UsageError(
            "--weights, -o, --show-dir and --fuse-conv-bn apply to classification/segmentation runs"
        )
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

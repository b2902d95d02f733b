"""``qualitas importance label|export-dataset|apply`` (docs/importance.md)."""

from __future__ import annotations

import argparse
import logging

HELP = "macroblock importance maps: label, export-dataset, apply"
"""One line for ``qualitas --help``."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "importance",
        help=HELP,
        description="Macroblock importance: ground truth from analytics gradients, datasets, selective "
        "enhancement and ROI encoding (docs/importance.md).",
    )
    s = p.add_subparsers(dest="importance_cmd", required=True)

    lab = s.add_parser("label", help="ground-truth importance of media frames")
    lab.add_argument("inputs", nargs="+", help="images, videos or folders of images")
    lab.add_argument("--out", required=True, help="label folder (frames/, importance.npz, frames.json)")
    lab.add_argument(
        "--analytics",
        default="mtcnn",
        help="analytics objective: mtcnn[:threshold=0.9,boxes=reference] (default) | detector:run=RUN[,classes=a+b,threshold=0.5,score=logit,boxes=reference] (a detection run) | quality_model:path=RUN (docs/importance.md)",
    )
    lab.add_argument(
        "--enhancer",
        default="unsharp",
        help="bicubic | unsharp | rdn[:variant=slim|medium] (pretrained, x2|x3|x4) | tiny_sr:path=W.pth | module:path=F.pt",
    )
    lab.add_argument("--scale", type=int, default=4, help="enhancement upscale factor (default 4)")
    lab.add_argument(
        "--downscale", type=int, default=1, help="make low-res input from pristine media by this factor"
    )
    lab.add_argument(
        "--block", type=int, default=16, help="macroblock size on the low-res frame (default 16)"
    )
    lab.add_argument("--mode", default="grad_x_diff", choices=("grad_x_diff", "grad"))
    lab.add_argument("--norm", default="max", choices=("max", "sum"))
    lab.add_argument("--k", type=int, default=10, help="quantisation classes (default 10)")
    lab.add_argument("--frame-step", type=int, default=1)
    lab.add_argument("--max-frames", type=int, default=None)

    exp = s.add_parser("export-dataset", help="segmentation dataset + qualitas manifest from a label folder")
    exp.add_argument("labels", help="label folder written by 'qualitas importance label'")
    exp.add_argument("--out", required=True)
    exp.add_argument("--ratios", default="0.7,0.1,0.2", help="train,val,test ratios (default 0.7,0.1,0.2)")
    exp.add_argument("--seed", type=int, default=0)

    app = s.add_parser("apply", help="selective enhancement (--select) and ROI encoding (--encode)")
    app.add_argument("labels", help="label folder (its low-res frames; its grids unless --predictor)")
    app.add_argument("--out", required=True, help="folder for report.json (and encodes)")
    app.add_argument("--predictor", help="trained importance run dir or .ckpt: use its predicted grids")
    app.add_argument(
        "--select", default="top:20%", help="blocks to enhance: top:N%% or top:F (default top:20%%)"
    )
    app.add_argument("--margin", type=int, default=0, help="dilate the selection by this many blocks")
    app.add_argument("--analytics", default=None, help="default: the label folder's")
    app.add_argument("--enhancer", default=None, help="default: the label folder's")
    app.add_argument("--save-frames", action="store_true", help="write the selectively enhanced frames")
    app.add_argument("--encode", action="store_true", help="ROI encode the low-res frames vs a plain encode")
    app.add_argument("--bitrate", type=float, default=300.0, help="--encode target in kbit/s (both encodes)")
    app.add_argument(
        "--qoffset", type=float, default=-0.5, help="--encode quantiser offset of the ROI, [-1, 1]"
    )
    app.add_argument("--fps", type=float, default=25.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.importance_cmd == "label":
        return _label(args)
    if args.importance_cmd == "export-dataset":
        return _export(args)
    return _apply(args)


def _label(args: argparse.Namespace) -> int:
    from qualitas.importance.analytics import build_analytics
    from qualitas.importance.enhancers import build_enhancer
    from qualitas.importance.label import label_media

    objective = build_analytics(args.analytics)
    enhancer = build_enhancer(args.enhancer, scale=args.scale)
    cheap = build_enhancer("bicubic", scale=args.scale)
    labels = label_media(
        args.inputs,
        args.out,
        objective,
        enhancer,
        cheap,
        scale=args.scale,
        downscale=args.downscale,
        block=args.block,
        mode=args.mode,
        norm=args.norm,
        k=args.k,
        frame_step=args.frame_step,
        max_frames=args.max_frames,
        meta={"analytics": args.analytics, "enhancer": args.enhancer},
    )
    print(f"labelled {len(labels.frames)} frames -> {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from qualitas.errors import UsageError
    from qualitas.importance.dataset_export import export_dataset

    try:
        tr, va, te = (float(v) for v in args.ratios.split(","))
    except ValueError:
        raise UsageError(f"--ratios expects three numbers train,val,test, got '{args.ratios}'") from None
    counts = export_dataset(
        args.labels, args.out, ratios={"train": tr, "val": va, "test": te}, seed=args.seed
    )
    print(f"exported {sum(counts.values())} frames -> {args.out} ({counts})")
    return 0


def _apply(args: argparse.Namespace) -> int:
    from qualitas.importance.apply import apply_labels

    report = apply_labels(
        args.labels,
        args.out,
        select=args.select,
        margin=args.margin,
        predictor=args.predictor,
        analytics=args.analytics,
        enhancer=args.enhancer,
        save_frames=args.save_frames,
        encode=args.encode,
        bitrate=args.bitrate,
        qoffset=args.qoffset,
        fps=args.fps,
    )
    print(
        f"enhanced {report['cost']:.1%} of pixels, recovered {report['recovered']:.1%} of the full-enhancement gain"
    )
    if "encode" in report:
        enc = report["encode"]
        print(
            f"ROI encode {enc['roi']['kbps']:.0f} kbit/s objective {enc['roi']['objective']:.4f}; "
            f"plain {enc['plain']['kbps']:.0f} kbit/s objective {enc['plain']['objective']:.4f}"
        )
    return 0

"""``qualitas importance label|export-dataset|apply`` (docs/importance.md)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "importance",
        help="macroblock importance maps: label, export-dataset, apply",
        description="Macroblock importance: ground truth from analytics gradients, datasets, selective "
        "enhancement and ROI encoding (docs/importance.md).",
    )
    s = p.add_subparsers(dest="importance_cmd", required=True)

    lab = s.add_parser("label", help="ground-truth importance of media frames")
    lab.add_argument("inputs", nargs="+", help="images, videos or folders of images")
    lab.add_argument("--out", required=True, help="label folder (frames/, importance.npz, frames.json)")
    lab.add_argument(
        "--analytics", default="mtcnn", help="analytics objective, e.g. mtcnn:threshold=0.9 (default mtcnn)"
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


def predict_grids(run: str, frames: list) -> list:
    """Predicted ranking grids ``(gh, gw)`` of low-res frames ``(3, h, w)`` from a trained run."""
    import torch

    from qualitas.importance.metrics import grid_scores
    from qualitas.training.run import load_trained

    model, _ = load_trained(run)
    with torch.no_grad():
        return [grid_scores(model(x[None]))[0] for x in frames]


def _apply(args: argparse.Namespace) -> int:
    import torch

    from qualitas.importance.analytics import build_analytics
    from qualitas.importance.apply import finite_mean, mean_grid, roi_encode_compare, selective_enhance
    from qualitas.importance.enhancers import build_enhancer
    from qualitas.importance.grid import parse_select, select_topk
    from qualitas.importance.label import LabelSet
    from qualitas.io.image import read_image

    fraction = parse_select(args.select)
    labels = LabelSet.load(args.labels)
    objective = build_analytics(args.analytics or labels.meta.get("analytics", "mtcnn"))
    enhancer = build_enhancer(args.enhancer or labels.meta.get("enhancer", "unsharp"), scale=labels.scale)
    cheap_up = build_enhancer("bicubic", scale=labels.scale)
    from qualitas.data.manifest import resolve_under

    frames = [read_image(resolve_under(args.labels, rel)).data for rel in labels.frames]
    grids = (
        predict_grids(args.predictor, frames) if args.predictor else [torch.from_numpy(r) for r in labels.raw]
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (rel, x, g) in enumerate(zip(labels.frames, frames, grids)):
        with torch.no_grad():
            cheap, enh = cheap_up(x[None])[0], enhancer(x[None])[0]
        frame, res = selective_enhance(
            objective,
            cheap,
            enh,
            select_topk(g, fraction),
            block=labels.block,
            scale=labels.scale,
            margin=args.margin,
            objective_cheap=labels.objective_cheap[i] if labels.objective_cheap else None,
        )
        rows.append({"frame": rel, **res.to_dict()})
        if args.save_frames:
            from PIL import Image

            (out / "frames").mkdir(exist_ok=True)
            arr = (frame.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(arr).save(out / "frames" / Path(rel).name)
    report: dict = {
        "select": args.select,
        "margin": args.margin,
        "grids": "predicted" if args.predictor else "ground truth",
        "cost": finite_mean([r["cost"] for r in rows]),
        "recovered": finite_mean([r["recovered"] for r in rows]),
        "frames": rows,
    }
    print(
        f"enhanced {report['cost']:.1%} of pixels, recovered {report['recovered']:.1%} of the full-enhancement gain"
    )
    if args.encode:
        norm = [g / g.max().clamp_min(1e-12) for g in grids]
        clip = torch.stack(frames)
        h, w = clip.shape[-2] // 2 * 2, clip.shape[-1] // 2 * 2

        def decoded_objective(x: torch.Tensor) -> torch.Tensor:
            return objective(cheap_up(x))

        enc = roi_encode_compare(
            clip[..., :h, :w],
            mean_grid(norm),
            out / "encode",
            decoded_objective,
            block=labels.block,
            bitrate_kbps_target=args.bitrate,
            fraction=fraction,
            qoffset=args.qoffset,
            margin=args.margin,
            fps=args.fps,
        )
        report["encode"] = enc
        print(
            f"ROI encode {enc['roi']['kbps']:.0f} kbit/s objective {enc['roi']['objective']:.4f}; "
            f"plain {enc['plain']['kbps']:.0f} kbit/s objective {enc['plain']['objective']:.4f}"
        )
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return 0

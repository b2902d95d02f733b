"""``qualitas predict MODEL INPUT... [--out predictions.jsonl] [--show-dir DIR]``: classification,
segmentation, detection and keypoint models on images, folders or video frames (docs/tasks.md)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "classify / segment / detect in images, folders or video frames with a trained or exported model"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help=HELP,
        description="Run a classification, segmentation, detection or keypoint model (a run dir, .ckpt, or "
        "an export folder / .onnx / .pt / .pt2 / .xml / SavedModel folder with its model.json) on images, folders (recursively) "
        "and videos (every --frame-step-th frame). One JSON line per image or frame (detectors: "
        "'detections' with label, class, score, box [x1, y1, x2, y2] px and keypoints).",
    )
    p.add_argument("model", metavar="MODEL", help="run dir, .ckpt, or an export folder or file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders or videos")
    p.add_argument("--out", help="predictions JSONL (default: stdout)")
    p.add_argument("--show-dir", help="write each image with its label / mask overlay / boxes drawn on")
    p.add_argument("--mask-dir", help="segmentation: write the predicted class masks (8-bit PNG)")
    p.add_argument("--topk", type=int, default=5, help="classification: classes listed per image")
    p.add_argument(
        "--score-min",
        type=float,
        default=0.3,
        help="detectors: list and draw detections scoring at least this",
    )
    p.add_argument("--frame-step", type=int, default=1, help="videos: every N-th frame")
    p.add_argument("--max-frames", type=int, help="videos: at most N frames each")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qualitas.data.manifest import atomic_write_text
    from qualitas.errors import UsageError
    from qualitas.runtime.detection import is_detection_model, load_detection_model, predict_detection_paths
    from qualitas.runtime.progress import progress_enabled
    from qualitas.runtime.vision import load_task_model, predict_paths

    if args.frame_step < 1 or args.topk < 1:
        raise UsageError("--frame-step and --topk must be >= 1")
    if is_detection_model(args.model):
        if args.mask_dir:
            raise UsageError("--mask-dir is for segmentation models")
        rows, errors = predict_detection_paths(
            load_detection_model(args.model, args.device),
            args.inputs,
            show_dir=args.show_dir,
            score_min=args.score_min,
            frame_step=args.frame_step,
            max_frames=args.max_frames,
            progress=progress_enabled(args.no_progress),
        )
    else:
        model = load_task_model(args.model, args.device, batch_size=args.batch_size)
        rows, errors = predict_paths(
            model,
            args.inputs,
            show_dir=args.show_dir,
            mask_dir=args.mask_dir,
            topk=args.topk,
            frame_step=args.frame_step,
            max_frames=args.max_frames,
            progress=progress_enabled(args.no_progress),
        )
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if args.out:
        atomic_write_text(args.out, text)
        print(
            f"{len(rows)} predictions: {args.out}" + (f", pictures: {args.show_dir}" if args.show_dir else "")
        )
    else:
        sys.stdout.write(text)
    for e in errors:
        print(f"qualitas predict: error: {e}", file=sys.stderr)
    return 1 if errors else 0

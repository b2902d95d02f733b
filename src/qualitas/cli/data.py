"""``qualitas data convert|frames|check|synth``: dataset tooling (docs/data.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qualitas.errors import UsageError
from qualitas.runtime.progress import progress_enabled

HELP = "dataset converters, frame extraction, manifest checks, synthetic ladders"
"""One line for ``qualitas --help``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "data",
        help=HELP,
        description="Dataset tooling: convert public datasets to the manifest schema, extract frames, "
        "check manifests, build synthetic distortion ladders with teacher labels.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser(
        "convert",
        help="convert a dataset's release layout to a manifest, or detection annotations between formats",
        description="Convert a quality dataset's release layout to a manifest (FORMAT: a dataset name), or, "
        "with --to, detection/keypoint annotations between COCO JSON, Pascal VOC XML and YOLO txt "
        "(FORMAT: coco|voc|yolo; SRC: the COCO JSON file, the VOC folder, or the YOLO images folder). "
        "docs/data.md#detection-annotations.",
    )
    p.add_argument(
        "format", metavar="FORMAT", help="dataset format: " + _formats() + "; with --to: coco, voc, yolo"
    )
    p.add_argument("src", metavar="SRC_DIR", help="dataset folder (or one label file)")
    p.add_argument(
        "--out",
        required=True,
        help="manifest to write (.jsonl, or .csv); with --to: the COCO .json file, or the VOC/YOLO folder",
    )
    p.add_argument(
        "--to", choices=("coco", "voc", "yolo"), help="convert detection annotations to this format"
    )
    p.add_argument("--classes", help="class-names file (YOLO input; fixes the class order of VOC input)")
    p.add_argument("--split", help="VOC input: read only ImageSets/Main/SPLIT.txt")
    p.add_argument("--root", help="folder the manifest paths are relative to (default: SRC_DIR)")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out rows whose files are missing (default: keep them, warn, exit status 1)",
    )
    p.set_defaults(func=run)

    p = sub.add_parser("frames", help="extract video frames to PNG/JPEG with a frames manifest")
    p.add_argument("src", metavar="VIDEO_OR_DIR")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per video)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--step", type=int, help="keep every N-th frame")
    g.add_argument("--fps", type=float, help="keep about F frames per second (by timestamp)")
    p.add_argument("--max-frames", type=int, help="at most N frames per video")
    p.add_argument("--format", choices=("png", "jpg"), default="png")
    p.add_argument("--manifest", help="frames manifest path (default: OUT/frames.jsonl)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "check",
        help="check a manifest (files, decoding, scores, splits), detection annotations, or a task config's data",
        description="Check every row of a manifest (with --root); with --boxes FORMAT detection/keypoint "
        "annotations (images missing or of another size, boxes outside the image or without area, unknown "
        "category ids, keypoints outside the image); or the classification/segmentation data of a task "
        "config (.yaml: missing files, unknown or out-of-range labels, mask sizes and values, class counts; "
        "docs/tasks.md). Exit status 1 when anything is wrong.",
    )
    p.add_argument(
        "manifest",
        metavar="MANIFEST_OR_CONFIG",
        help="the manifest; with --boxes: COCO JSON / VOC folder / YOLO images; or a task config (.yaml)",
    )
    p.add_argument(
        "--root",
        help="dataset root the manifest (or annotation image) paths are relative to (not for configs)",
    )
    p.add_argument(
        "--boxes", choices=("coco", "voc", "yolo"), help="check detection annotations in this format"
    )
    p.add_argument("--classes", help="with --boxes yolo: the class-names file")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="task configs")
    p.add_argument("--deep", action="store_true", help="decode every video frame (default: first and last)")
    p.add_argument("--write-clean", metavar="OUT", help="write the good rows (with media sizes) to OUT")
    p.add_argument("--mos-range", nargs=2, metavar=("LO", "HI"), help="allowed mos range")
    p.add_argument("--examples", type=int, default=3, help="examples shown per problem kind")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "browse",
        help="draw a task dataset's labels / masks onto its images into a folder",
        description="Write each image of a classification/segmentation config's split with its "
        "annotation drawn on (class names; masks as a coloured overlay), for a visual check before training.",
    )
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--out", required=True, help="folder for the pictures")
    p.add_argument("--split", choices=("train", "val", "test"), default="train")
    p.add_argument("--max", type=int, default=100, help="at most N pictures (default 100)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "shapes",
        help="write a synthetic shapes dataset (classification, segmentation, detection or keypoints) "
        "in the official layouts (detection/keypoints: COCO JSON)",
    )
    p.add_argument(
        "--task", choices=("classification", "segmentation", "detection", "keypoints"), required=True
    )
    p.add_argument("--out", required=True)
    p.add_argument("--layout", choices=("folders", "list"), default="folders")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (detection: use 96 or more)")
    p.add_argument("--train", type=int, default=600)
    p.add_argument("--val", type=int, default=90)
    p.add_argument("--test", type=int, default=90)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)

    p = sub.add_parser("synth", help="build distorted images/videos with full-reference teacher labels")
    p.add_argument("--images", type=Path, help="folder of pristine images")
    p.add_argument("--videos", type=Path, help="folder of pristine videos")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--levels", type=int, default=5, help="levels per type, 1..5 (default 5)")
    p.add_argument("--types", nargs="+", help="image distortion types (default: all)")
    p.add_argument("--codecs", nargs="+", help="video codec ladders (default: all PyAV can encode)")
    p.add_argument("--no-resolution-ladder", action="store_true", help="skip the downscale/upscale ladder")
    p.add_argument("--fps-drop", action="store_true", help="add the frame-rate drop ladder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--max-images", type=int)
    p.add_argument("--max-videos", type=int)
    p.add_argument(
        "--clip-seconds", type=float, default=4.0, help="length of pristine clips (0: whole video)"
    )
    p.add_argument("--photo-videos", type=int, default=0, help="pan/zoom videos made from N of the images")
    p.add_argument("--image-max-side", type=int, default=0, help="downscale pristine images (0: keep)")
    p.add_argument("--video-max-side", type=int, default=0, help="downscale pristine clips (0: keep)")
    p.add_argument(
        "--teacher",
        default="ms_ssim,psnr",
        help="image teacher: name[:lo:hi[:weight]],...; 'none' for no labels (default ms_ssim,psnr)",
    )
    p.add_argument("--vmaf-model", default="vmaf_v0.6.1", help="video teacher model; 'none' for no labels")
    p.add_argument("--list-types", action="store_true", help="print the distortion types and exit")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    return parser


def _formats() -> str:
    from qualitas.data.converters import CONVERTERS

    return ", ".join(CONVERTERS.names())


def run(args: argparse.Namespace) -> int:
    action = args.data_command
    if action == "convert":
        return _convert(args)
    if action == "frames":
        return _frames(args)
    if action == "check":
        return _check(args)
    if action == "synth":
        return _synth(args)
    if action == "browse":
        return _browse(args)
    if action == "shapes":
        return _shapes(args)
    raise UsageError(f"unknown data action {action!r}")


def _convert(args) -> int:
    if args.to:
        return _convert_boxes(args)
    from qualitas.data.converters import convert
    from qualitas.data.manifest import write_manifest

    res = convert(args.format, args.src, root=args.root, skip_missing=args.skip_missing)
    write_manifest(res.records, args.out)
    conv = res.converter
    direction = "higher is better" if conv.higher_is_better else "LOWER is better"
    print(f"{conv.name}: wrote {len(res.records)} rows to {args.out} (paths relative to {res.root})")
    print(f"  scores: {conv.scale}; {direction}")
    for note in res.notes:
        print(f"  note: {note}")
    if res.missing_rows:
        what = (
            "left out (--skip-missing)"
            if args.skip_missing
            else "kept; rerun with --skip-missing to leave them out"
        )
        print(f"warning: {res.missing_rows} row(s) name missing files ({what}); e.g.:", file=sys.stderr)
        for ex in res.missing_examples:
            print(f"  {ex}", file=sys.stderr)
        return 0 if args.skip_missing else 1
    return 0


def _convert_boxes(args) -> int:
    from qualitas.data.detection import FORMATS, read_detection, write_detection

    if args.format not in FORMATS:
        raise UsageError(
            f"--to converts detection annotations: FORMAT must be one of {', '.join(FORMATS)}, not {args.format!r}"
        )
    ds = read_detection(args.format, args.src, classes=args.classes, split=args.split)
    where, dropped = write_detection(ds, args.to, args.out)
    print(
        f"{args.format} -> {args.to}: {len(ds.images)} images, {ds.num_boxes} boxes, "
        f"{len(ds.categories)} categories written to {where}"
    )
    if dropped:
        print(f"  note: {dropped} crowd/difficult flag(s) dropped: {args.to} has no field for them")
    return 0


def _frames(args) -> int:
    from qualitas.data.frames import FrameOptions, extract_frames

    opts = FrameOptions(step=args.step, fps=args.fps, max_frames=args.max_frames, fmt=args.format)
    res = extract_frames(
        args.src, args.out, opts, manifest=args.manifest, progress=progress_enabled(args.no_progress)
    )
    manifest = args.manifest or str(Path(args.out) / "frames.jsonl")
    print(
        f"{len(res.records)} frames in {manifest} ({res.written} written now, "
        f"{res.skipped_videos} video(s) already complete)"
    )
    for f in res.failures:
        print(f"error: {f}", file=sys.stderr)
    return 1 if res.failures else 0


def _check(args) -> int:
    from qualitas.data.check import check_records, parse_range
    from qualitas.data.manifest import read_manifest, write_manifest

    if Path(args.manifest).suffix.lower() in (".yaml", ".yml"):
        return _check_task(args)
    if args.override:
        raise UsageError("-o applies to task configs (.yaml), not manifests")
    if args.root is None:
        raise UsageError("--root is required for a manifest (the folder its paths are relative to)")
    if not Path(args.root).is_dir():
        raise UsageError(f"--root is not a folder: {args.root}")
    if args.boxes:
        return _check_boxes(args)
    records = read_manifest(args.manifest)
    report = check_records(
        records,
        args.root,
        deep=args.deep,
        mos_range=parse_range(args.mos_range),
        progress=progress_enabled(args.no_progress),
    )
    print(report.summary(examples=args.examples))
    if args.write_clean:
        write_manifest(report.good, args.write_clean)
        print(f"wrote {len(report.good)} good rows to {args.write_clean}")
    return 0 if report.ok else 1


def _check_boxes(args) -> int:
    from collections import Counter

    from qualitas.data.detection import check_detection, read_detection

    ds = read_detection(args.boxes, args.manifest, classes=args.classes)
    problems = check_detection(ds, args.root)
    print(f"{len(ds.images)} images, {ds.num_boxes} boxes, {len(ds.categories)} categories")
    if not problems:
        print("no problems found")
        return 0
    counts = Counter(p.kind for p in problems)
    print(f"{len(problems)} problem(s): " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    for kind in counts:
        for p in [p for p in problems if p.kind == kind][: args.examples]:
            where = p.file if p.box is None else f"{p.file} box {p.box}"
            print(f"  {kind}: {where}: {p.message}")
    return 1


def _synth(args) -> int:
    from qualitas.data.synth.build import SynthConfig, build
    from qualitas.data.synth.distortions import list_distortions
    from qualitas.data.synth.teacher import ImageTeacherConfig, VideoTeacherConfig

    if args.list_types:
        for d in list_distortions():
            print(f"{d.name:24s} {d.family:12s} {d.unit}: {', '.join(f'{p:g}' for p in d.params)}")
        return 0
    teacher = None if args.teacher.lower() == "none" else ImageTeacherConfig.parse(args.teacher)
    vteacher = (
        None
        if args.vmaf_model.lower() == "none"
        else VideoTeacherConfig(model=args.vmaf_model, threads=0 if args.jobs <= 1 else 1)
    )
    cfg = SynthConfig(
        out=args.out,
        images=args.images,
        videos=args.videos,
        levels=args.levels,
        types=tuple(args.types) if args.types else None,
        codecs=tuple(args.codecs) if args.codecs else None,
        resolution_ladder=not args.no_resolution_ladder,
        fps_drop=args.fps_drop,
        seed=args.seed,
        jobs=args.jobs,
        max_images=args.max_images,
        max_videos=args.max_videos,
        clip_seconds=args.clip_seconds or None,
        photo_videos=args.photo_videos,
        image_max_side=args.image_max_side,
        video_max_side=args.video_max_side,
        teacher=teacher,
        video_teacher=vteacher,
        progress=progress_enabled(args.no_progress),
    )
    res = build(cfg)
    for name, path in res.manifests.items():
        print(f"{name}: {res.counts[name]} rows -> {path}")
    print(f"tasks: {res.tasks_run} run, {res.tasks_skipped} already done")
    for f in res.failures:
        print(f"error: {f}", file=sys.stderr)
    return 1 if res.failures else 0


def _task_config(path: str, overrides: list[str]):
    from qualitas.training.config import load_config

    cfg = load_config(path, overrides)
    if cfg.task == "quality":
        raise UsageError(
            f"{path}: a quality config; check its manifest with qualitas data check MANIFEST --root R"
        )
    return cfg


def _check_task(args) -> int:
    import json

    from qualitas.training.vision_eval import check_config_data

    rep = check_config_data(_task_config(args.manifest, args.override))
    print(
        f"{rep['task']} ({rep['kind']}): {len(rep['classes'])} classes; "
        + ", ".join(f"{s} {n}" for s, n in rep["splits"].items() if n)
    )
    for split, counts in rep["counts"].items():
        per = ", ".join(f"{c} {n}" for c, n in zip(rep["classes"], counts))
        print(f"  {split}: {per}")
        empty = [c for c, n in zip(rep["classes"], counts) if n == 0]
        if empty and split == "train":
            print(f"  warning: no training samples of {', '.join(empty)}", file=sys.stderr)
    print(json.dumps({"ok": True, "splits": rep["splits"]}))
    return 0


def _browse(args) -> int:
    from qualitas.training.vision_eval import browse_dataset

    n = browse_dataset(
        _task_config(args.config, args.override), args.out, split=args.split, max_items=args.max
    )
    print(f"{n} pictures in {args.out}")
    return 0


def _shapes(args) -> int:
    from qualitas.data.synth.shapes import write_classification, write_detection, write_segmentation

    counts = {s: n for s, n in (("train", args.train), ("val", args.val), ("test", args.test)) if n > 0}
    if args.task in ("detection", "keypoints"):
        out = write_detection(
            args.out, counts, size=args.size, seed=args.seed, keypoints=args.task == "keypoints"
        )
        print(
            f"{args.task} shapes (coco): " + ", ".join(f"{s} {n}" for s, n in counts.items()) + f" in {out}"
        )
        return 0
    write = write_classification if args.task == "classification" else write_segmentation
    out = write(args.out, counts, size=args.size, seed=args.seed, layout=args.layout)
    print(
        f"{args.task} shapes ({args.layout}): "
        + ", ".join(f"{s} {n}" for s, n in counts.items())
        + f" in {out}"
    )
    return 0

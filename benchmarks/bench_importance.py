"""Importance maps on real content: objective recovered by enhancing the top-k% blocks.

Pipeline (all offline, CPU):
1. label training and test media with the MTCNN face objective (``label_pairs``): the
   low-quality input is the pristine frame downscaled 4x, the cheap upscale bicubic, the
   enhanced frame the pristine one (an oracle x4 enhancer; ``--enhancer tiny_sr`` uses
   qualitas' TinySR trained on non-test photos). Training media are labelled at several
   scales (``--jitter``: the pristine frame resized first, so faces of many sizes);
2. train the importance predictor with the training engine
   (``configs/importance_faces.yaml`` + overrides: backbone, epochs, loss);
3. on the held-out test contents (whole photos and a whole video never used in training),
   enhance the ground-truth / predicted / random top-k% blocks, paste them into the bicubic
   upscale and report the share of the full-enhancement gain recovered, summed over the
   frames whose gain is at least ``--min-gain``, plus per-frame figures and timings of
   labelling vs prediction (same run).

    python benchmarks/bench_importance.py --work bench-output/importance --figure docs/figures/importance_recovery.png
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import statistics
import time
from pathlib import Path

import torch

from qualitas.importance.analytics import MTCNNObjective, reference_objective
from qualitas.importance.apply import selective_frame
from qualitas.importance.dataset_export import export_dataset
from qualitas.importance.enhancers import Bicubic, TinySR, train_tiny_sr
from qualitas.importance.grid import select_random, select_topk
from qualitas.importance.label import LabelSet
from qualitas.io.image import read_image

MEDIA = Path("/work/shared/media")
# Held out as whole contents: never labelled for training, never used for TinySR.
TEST_PHOTOS = [
    "images/matplotlib_grace_hopper.jpg",
    "images/opencv_messi5.jpg",
    "images/skimage_astronaut.png",
    "images/opencv_basketball1.png",
    "images/opencv_basketball2.png",
]
TEST_VIDEO = "videos/carphone_pristine.mp4"  # carphone_distorted is the same content: unused
# Training contents: (path, frame_step, max_frames). Megamind_bugy is Megamind re-encoded.
TRAIN_VIDEOS = [
    ("videos/Megamind.avi", 12, 22),
    ("videos/bigbuckbunny.mp4", 12, 11),
    ("videos/bikes.mp4", 10, 25),
]
# Photos that are not test photos: the cameraman (a face) and scenes without faces (false
# positives of the cascade's first stage are exactly what the predictor must learn to ignore).
TRAIN_PHOTOS = [
    "images/skimage_camera.png",
    "images/skimage_motorcycle_left.png",
    "images/opencv_scenetext01.jpg",
    "images/opencv_sudoku.png",
    "images/skimage_chelsea.png",
    "images/skimage_coffee.png",
    "images/opencv_home.jpg",
    "images/opencv_baboon.jpg",
    "images/sklearn_china.jpg",
    "images/opencv_fruits.jpg",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="bench-output/importance")
    ap.add_argument("--figure", default=None)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--backbone", default="mtcnn_pnet")
    ap.add_argument("--loss", default="ce", choices=("ce", "mse"))
    ap.add_argument("--lr", type=float, default=3.0e-3)
    ap.add_argument("--crop", type=int, default=0, help="block-aligned training crops (0: whole frames)")
    ap.add_argument("--run-name", default="predictor", help="sub-folder of --work for the trained run")
    ap.add_argument("--min-face", type=int, default=32)
    ap.add_argument("--jitter", default="1.0,0.6", help="scales the training media are labelled at")
    ap.add_argument(
        "--enhancer",
        default="oracle",
        choices=("oracle", "tiny_sr"),
        help="oracle: the pristine frame is the enhanced version (a perfect x4 SR); tiny_sr: ours",
    )
    ap.add_argument("--sr-steps", type=int, default=300)
    ap.add_argument(
        "--boxes",
        default="reference",
        choices=("reference", "detect"),
        help="MTCNN objective: O-Net logit at the enhanced frame's boxes (smooth) or the full cascade",
    )
    ap.add_argument("--fractions", default="0.1,0.2,0.4", help="shares of blocks enhanced")
    ap.add_argument("--random-seeds", type=int, default=10)
    ap.add_argument("--min-gain", type=float, default=0.5, help="frames with a smaller gain are not summed")
    ap.add_argument("--test-video-frames", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    fractions = tuple(float(f) for f in args.fractions.split(","))
    jitter = tuple(float(f) for f in args.jitter.split(","))
    seeds = range(args.random_seeds)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # 1. enhancer and labels
    sr = None
    if args.enhancer == "tiny_sr":
        sr_path = work / "tiny_sr.pth"
        if not sr_path.is_file():
            test_names = {Path(p).name for p in TEST_PHOTOS}
            pristine = [
                read_image(p).data
                for p in sorted(glob.glob(str(MEDIA / "images/*")))
                if Path(p).name not in test_names
            ]
            t = time.perf_counter()
            torch.save(train_tiny_sr(pristine, scale=4, steps=args.sr_steps).state_dict(), sr_path)
            timings["tiny_sr_train_s"] = time.perf_counter() - t
        sr = TinySR(4)
        sr.load_state_dict(torch.load(sr_path, weights_only=True))
        sr.eval()
    cheap = Bicubic(4)
    # Labels do not depend on --boxes (the gradient at the enhanced frame uses its own boxes
    # either way); the stored cheap-frame objective does.
    objective = MTCNNObjective(min_face=args.min_face, threshold=0.9, score="logit", boxes=args.boxes)

    def label(name: str, sources: list, scales: tuple = (1.0,)) -> LabelSet:
        out = work / name
        if (out / "frames.json").is_file():
            return LabelSet.load(out)
        t = time.perf_counter()
        labels = label_pairs(out, sources, objective, sr, cheap, scales=scales)
        timings[f"label_{name}_s_per_frame"] = (time.perf_counter() - t) / len(labels.frames)
        return labels

    train_sets = {
        "labels_train_video": label(
            "labels_train_video", [(MEDIA / p, s, n) for p, s, n in TRAIN_VIDEOS], jitter
        ),
        "labels_train_photo": label("labels_train_photo", [(MEDIA / p, 1, 1) for p in TRAIN_PHOTOS], jitter),
    }
    step = 120 // max(1, args.test_video_frames)
    test_labels = merge_labels(
        {
            "labels_test": label("labels_test", [(MEDIA / p, 1, 1) for p in TEST_PHOTOS]),
            "labels_test_video": label(
                "labels_test_video", [(MEDIA / TEST_VIDEO, step, args.test_video_frames)]
            ),
        }
    )

    # 2. predictor through the training engine
    from qualitas.training.config import load_config
    from qualitas.training.run import load_trained, train

    run_dir = work / args.run_name
    if not (run_dir / "checkpoints" / "best.ckpt").is_file():
        rows_all = []
        for part in train_sets:
            # Per-frame split (groups unset): validation only picks the checkpoint.
            export_dataset(
                work / part, work / "dataset" / part, ratios={"train": 0.8, "val": 0.2, "test": 0.0}
            )
            for line in (work / "dataset" / part / "manifest.jsonl").read_text().splitlines():
                row = json.loads(line)
                row["path"], row["grid"] = f"{part}/{row['path']}", f"{part}/{row['grid']}"
                rows_all.append(json.dumps(row))
        (work / "dataset" / "manifest.jsonl").write_text("\n".join(rows_all) + "\n")
        loss = (
            ["model.num_classes=10", "loss={name: importance_ce, class_weights: balanced}"]
            if args.loss == "ce"
            else ["model.num_classes=0", "loss={name: importance_mse}"]
        )
        cfg = load_config(
            Path(__file__).resolve().parents[1] / "configs" / "importance_faces.yaml",
            [
                f"data.manifest={work / 'dataset' / 'manifest.jsonl'}",
                f"model.backbone={args.backbone}",
                *loss,
                "data.num_workers=0",
                *(
                    [
                        "data.batch_size=8",
                        f"data.input_size={{mode: crop, size: [{args.crop}, {args.crop}], hflip: true}}",
                    ]
                    if args.crop
                    else ["data.batch_size=1", "data.input_size={mode: none, hflip: true}"]
                ),
                f"trainer.max_epochs={args.epochs}",
                "trainer.accelerator=cpu",
                "trainer.progress_bar=false",
                f"optimizer.lr={args.lr}",
            ],
        )
        t = time.perf_counter()
        train(cfg, out=run_dir)
        timings["predictor_train_s"] = time.perf_counter() - t
    model, info = load_trained(run_dir)
    model.eval()
    from qualitas.importance.metrics import grid_scores, spearman_per_frame, topk_iou

    # 3. selective enhancement on the test frames
    rows = []
    t_pred = t_obj = 0.0
    n_obj = 0
    for i, rel in enumerate(test_labels.frames):
        x = read_image(work / rel).data
        with torch.no_grad():
            u = cheap(x[None])[0].clamp(0, 1)
            e = sr(x[None])[0].clamp(0, 1) if sr is not None else read_image(work / hr_path(rel)).data
            t = time.perf_counter()
            pred = grid_scores(model(x[None]))[0]
            t_pred += time.perf_counter() - t
            t = time.perf_counter()
            obj = reference_objective(objective, e[None])  # boxes of e, once per frame
            f_c, f_e = float(obj(u[None])[0]), float(obj(e[None])[0])
        gt = torch.from_numpy(test_labels.raw[i])
        row = {
            "frame": rel,
            "f_cheap": f_c,
            "f_full": f_e,
            "srocc": float(spearman_per_frame(pred[None], gt[None])[0]),
            "iou20": float(topk_iou(pred[None], gt[None], 0.2)[0]),
        }
        for frac in fractions:
            masks = {
                "gt": select_topk(gt, frac),
                "pred": select_topk(pred, frac),
                **{
                    f"random{s}": select_random(gt.shape, frac, torch.Generator().manual_seed(s))
                    for s in seeds
                },
            }
            for key, mask in masks.items():
                frame, cost = selective_frame(u, e, mask, block=16, scale=4)
                with torch.no_grad():
                    row[f"{key}@{frac}"] = float(obj(frame[None])[0])
                row[f"cost_{key}@{frac}"] = cost
                n_obj += 1
        t_obj += time.perf_counter() - t
        row["gain"] = f_e - f_c
        for frac in fractions:
            for key in ("gt", "pred"):
                row[f"rec_{key}@{frac}"] = (
                    (row[f"{key}@{frac}"] - f_c) / row["gain"] if row["gain"] else float("nan")
                )
            rnd = statistics.fmean(row[f"random{s}@{frac}"] for s in seeds)
            row[f"rec_random@{frac}"] = (rnd - f_c) / row["gain"] if row["gain"] else float("nan")
        rows.append(row)
        logging.info(
            "%s: gain %.3f srocc %.2f iou20 %.2f rec@0.2 gt %.2f pred %.2f random %.2f",
            rel, row["gain"], row["srocc"], row["iou20"],
            row.get("rec_gt@0.2", float("nan")), row.get("rec_pred@0.2", float("nan")),
            row.get("rec_random@0.2", float("nan")),
        )  # fmt: skip
    timings["predict_s_per_frame"] = t_pred / len(rows)
    timings["objective_s_per_call"] = t_obj / (n_obj + 2 * len(rows))
    timings.update(
        json.loads((work / "timings.json").read_text()) if (work / "timings.json").is_file() else {}
    )
    (work / "timings.json").write_text(json.dumps(timings, indent=1))

    counted = [r for r in rows if r["gain"] >= args.min_gain]
    gain = sum(r["gain"] for r in counted)
    summary: dict = {
        "frames": len(rows),
        "frames_counted": len(counted),
        "min_gain": args.min_gain,
        "total_gain": gain,
        "boxes": args.boxes,
        "backbone": args.backbone,
        "loss": args.loss,
        "timings": timings,
        "predictor_val": info.get("metrics", {}),
    }
    for frac in fractions:
        for key in ("gt", "pred"):
            summary[f"recovered_{key}@{frac}"] = (
                sum(r[f"{key}@{frac}"] - r["f_cheap"] for r in counted) / gain
            )
            summary[f"median_{key}@{frac}"] = statistics.median(r[f"rec_{key}@{frac}"] for r in counted)
        per_seed = [sum(r[f"random{s}@{frac}"] - r["f_cheap"] for r in counted) / gain for s in seeds]
        summary[f"recovered_random@{frac}"] = statistics.fmean(per_seed)
        summary[f"recovered_random_sd@{frac}"] = statistics.pstdev(per_seed)
        summary[f"median_random@{frac}"] = statistics.median(r[f"rec_random@{frac}"] for r in counted)
    summary["test_srocc"] = statistics.fmean(r["srocc"] for r in rows if r["srocc"] == r["srocc"])
    summary["test_iou20"] = statistics.fmean(r["iou20"] for r in rows)
    (work / f"results_{args.run_name}_{args.boxes}.json").write_text(
        json.dumps({"summary": summary, "rows": rows}, indent=1)
    )
    print(json.dumps(summary, indent=1))
    if args.figure:
        enh = "oracle x4 enhancer" if sr is None else "TinySR x4"
        title = f"MTCNN logit ({args.boxes} boxes), {enh}, {len(counted)} test frames"
        figure(summary, rows, work, test_labels, model, Path(args.figure), fractions, title)


def hr_path(rel: str) -> str:
    return rel.replace("/frames/", "/hr/")


def label_pairs(out: Path, sources: list, objective, sr, cheap, *, scales: tuple = (1.0,)) -> LabelSet:
    """Label 4x-downscaled pristine media ``sources`` = ``[(path, frame_step, max_frames)]``,
    each at every scale in ``scales`` (the pristine frame resized first); the enhanced
    frame is ``sr(low)`` or, with ``sr=None``, the pristine frame itself (saved as
    ``hr/<name>.png`` for the evaluation). Frames are grouped by source file."""
    import torch.nn.functional as F
    from PIL import Image

    from qualitas.importance.enhancers import bicubic_down
    from qualitas.importance.label import label_frames
    from qualitas.io.media import media_kind
    from qualitas.io.video import iter_frames

    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "hr").mkdir(parents=True, exist_ok=True)
    current = {}
    groups: list[str] = []

    def frames():
        for f, step, count in sources:
            f = Path(f)
            if media_kind(f) == "image":
                items = [(f.stem, read_image(f).data)]
            else:
                items = [
                    (f"{f.stem}_{fr.index:06d}", fr.data)
                    for fr in iter_frames(f, frame_step=step, max_frames=count)
                ]
            for name, hr in items:
                for s in scales:
                    if s != 1.0:
                        size = (round(hr.shape[1] * s), round(hr.shape[2] * s))
                        im = F.interpolate(hr[None], size=size, mode="bicubic", antialias=True)[0].clamp(0, 1)
                        name_s = f"{name}_s{round(100 * s)}"
                    else:
                        im, name_s = hr, name
                    lr = bicubic_down(im[None], 4)[0]
                    im = im[:, : lr.shape[1] * 4, : lr.shape[2] * 4]
                    for sub, arr_im in (("frames", lr), ("hr", im)):
                        arr = (arr_im * 255).round().byte().permute(1, 2, 0).numpy()
                        Image.fromarray(arr).save(out / sub / f"{name_s}.png")
                    current["hr"] = read_image(out / "hr" / f"{name_s}.png").data
                    groups.append(f.name)
                    yield f"frames/{name_s}.png", read_image(out / "frames" / f"{name_s}.png").data

    enhance = sr if sr is not None else (lambda x: current["hr"][None])
    labels = label_frames(frames(), objective, enhance, cheap, scale=4, block=16)
    labels.meta = {"groups": groups}
    labels.save(out)
    return labels


def merge_labels(parts: dict[str, LabelSet]) -> LabelSet:
    """Test frames of several label folders; frame paths made relative to the work dir."""
    sets = list(parts.items())
    a = sets[0][1]
    return LabelSet(
        [f"{name}/{f}" for name, s in sets for f in s.frames],
        [r for _, s in sets for r in s.raw],
        [v for _, s in sets for v in s.objective_enhanced],
        [v for _, s in sets for v in s.objective_cheap],
        a.block,
        a.scale,
        a.mode,
    )


def figure(
    summary: dict, rows: list, work: Path, labels: LabelSet, model, path: Path, fractions: tuple, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qualitas.importance.grid import blocks_to_pixels, normalise
    from qualitas.importance.metrics import grid_scores

    shown = [i for i, r in enumerate(rows) if "labels_test/" in r["frame"]][:2]
    shown += [i for i, r in enumerate(rows) if "labels_test_video/" in r["frame"]][:1]
    fig, axes = plt.subplots(2, 1 + len(shown), figsize=(4 * (1 + len(shown)), 7))
    ax = axes[0, 0]
    for key, style in (("gt", "o-"), ("pred", "s-"), ("random", "^--")):
        ax.plot(
            [100 * f for f in fractions],
            [100 * summary[f"recovered_{key}@{f}"] for f in fractions],
            style,
            label={"gt": "ground truth", "pred": "predicted", "random": "random (mean)"}[key],
        )
    ax.axhline(100, color="gray", lw=0.8)
    ax.axhline(80, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("blocks enhanced (%)")
    ax.set_ylabel("objective gain recovered (%)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8)
    axes[1, 0].axis("off")
    for col, i in enumerate(shown, start=1):
        x = read_image(work / labels.frames[i]).data
        gt = normalise(torch.from_numpy(labels.raw[i]))
        with torch.no_grad():
            pred = normalise(grid_scores(model(x[None]))[0].clamp_min(0))
        for r, (g, name) in enumerate(((gt, "ground truth"), (pred, "predicted"))):
            ax = axes[r, col]
            ax.imshow(x.permute(1, 2, 0).numpy())
            ax.imshow(
                blocks_to_pixels(g, 16, *x.shape[-2:]).numpy(), alpha=0.55, cmap="inferno", vmin=0, vmax=1
            )
            ax.set_title(f"{name}: {Path(labels.frames[i]).stem}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64)


if __name__ == "__main__":
    main()

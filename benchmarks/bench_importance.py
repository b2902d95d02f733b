"""Importance maps on real content: objective recovered by enhancing the top 20% blocks.

Pipeline (all offline, CPU):
1. train qualitas' TinySR (x4) on pristine photos that are not test images;
2. label training frames and test frames (4x-downscaled pristine media) with MTCNN face
   confidence as the objective and TinySR as the enhancer (``label_media``);
3. export the training labels and train the importance predictor with the training engine
   (``qualitas.training.run.train`` on ``configs/importance_faces.yaml`` + overrides);
4. on the test frames, enhance the ground-truth / predicted / random top-k% blocks
   (paste into bicubic) and report the share of the full-enhancement gain recovered
   (summed over frames), plus timings of labelling vs prediction (same run, ratios).

    python benchmarks/bench_importance.py --work bench-output/importance --figure docs/figures/importance_recovery.png
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import time
from pathlib import Path

import torch

from qualitas.importance.analytics import MTCNNObjective
from qualitas.importance.apply import selective_enhance
from qualitas.importance.dataset_export import export_dataset
from qualitas.importance.enhancers import Bicubic, TinySR, train_tiny_sr
from qualitas.importance.grid import select_random, select_topk
from qualitas.importance.label import LabelSet
from qualitas.io.image import read_image

MEDIA = Path("/work/shared/media")
TEST_PHOTOS = [
    "images/matplotlib_grace_hopper.jpg",
    "images/opencv_messi5.jpg",
    "images/skimage_astronaut.png",
    "images/opencv_basketball1.png",
    "images/opencv_basketball2.png",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="bench-output/importance")
    ap.add_argument("--figure", default=None)
    ap.add_argument("--train-video", default=str(MEDIA / "videos/Megamind.avi"))
    ap.add_argument("--train-step", type=int, default=6)
    ap.add_argument("--train-frames", type=int, default=40)
    ap.add_argument(
        "--test-video-start", type=float, default=10.1, help="seconds; later video frames are test frames"
    )
    ap.add_argument("--sr-steps", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--backbone", default="test_resnet")
    ap.add_argument("--min-face", type=int, default=24)
    ap.add_argument(
        "--enhancer",
        default="oracle",
        choices=("oracle", "tiny_sr"),
        help="oracle: the pristine frame is the enhanced version (a perfect x4 SR); tiny_sr: ours",
    )
    ap.add_argument("--score", default="logit", choices=("prob", "logit"))
    ap.add_argument("--extra-train", nargs="*", default=[], help="more training media (videos/images)")
    ap.add_argument("--whole-frames", action="store_true", help="train on whole frames, batch 1")
    ap.add_argument("--fractions", default="0.1,0.2,0.4", help="shares of blocks enhanced")
    ap.add_argument("--random-seeds", type=int, default=2)
    ap.add_argument("--test-video-frames", type=int, default=3)
    args = ap.parse_args()
    fractions = tuple(float(f) for f in args.fractions.split(","))
    seeds = range(args.random_seeds)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # 1. enhancer
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
    objective = MTCNNObjective(min_face=args.min_face, threshold=0.9, score=args.score)

    # 2. labels
    def label(name: str, inputs: list, **kw) -> LabelSet:
        out = work / name
        if (out / "frames.json").is_file():
            return LabelSet.load(out)
        t = time.perf_counter()
        labels = label_pairs(out, inputs, objective, sr if args.enhancer == "tiny_sr" else None, cheap, **kw)
        timings[f"label_{name}_s_per_frame"] = (time.perf_counter() - t) / len(labels.frames)
        return labels

    label("labels_train", [args.train_video], frame_step=args.train_step, max_frames=args.train_frames)
    if args.extra_train:
        label("labels_extra", args.extra_train, frame_step=args.train_step, max_frames=args.train_frames)
    # Test: photos with people, and later frames of the training video (unseen frames).
    test_labels = label("labels_test", [MEDIA / p for p in TEST_PHOTOS])
    if args.test_video_frames:
        video = label(
            "labels_test_video",
            [args.train_video],
            frame_step=10,
            max_frames=args.test_video_frames,
            start=args.test_video_start,
        )
        test_labels = merge_labels(test_labels, video)

    # 3. predictor through the training engine
    from qualitas.training.config import load_config
    from qualitas.training.run import load_trained, train

    run_dir = work / "predictor"
    if not (run_dir / "checkpoints" / "best.ckpt").is_file():
        rows_all = []
        for part in ["labels_train"] + (["labels_extra"] if args.extra_train else []):
            export_dataset(
                work / part, work / "dataset" / part, ratios={"train": 0.8, "val": 0.2, "test": 0.0}
            )
            for line in (work / "dataset" / part / "manifest.jsonl").read_text().splitlines():
                row = json.loads(line)
                row["path"], row["grid"] = f"{part}/{row['path']}", f"{part}/{row['grid']}"
                rows_all.append(json.dumps(row))
        (work / "dataset" / "manifest.jsonl").write_text("\n".join(rows_all) + "\n")
        sizing = (
            ["data.batch_size=1", "data.input_size={mode: none}"]
            if args.whole_frames
            else ["data.batch_size=8", "data.input_size={mode: crop, size: [96, 96], hflip: true}"]
        )
        cfg = load_config(
            Path(__file__).resolve().parents[1] / "configs" / "importance_faces.yaml",
            [
                f"data.manifest={work / 'dataset' / 'manifest.jsonl'}",
                f"model.backbone={args.backbone}",
                "data.num_workers=0",
                *sizing,
                f"trainer.max_epochs={args.epochs}",
                "trainer.accelerator=cpu",
                "trainer.progress_bar=false",
                "optimizer.lr=3.0e-3",
            ],
        )
        t = time.perf_counter()
        train(cfg, out=run_dir)
        timings["predictor_train_s"] = time.perf_counter() - t
    model, info = load_trained(run_dir)
    from qualitas.importance.metrics import grid_scores, spearman_per_frame, topk_iou

    # 4. selective enhancement on the test frames
    rows = []
    t_pred = t_obj = 0.0
    for i, rel in enumerate(test_labels.frames):
        x = read_image(work / rel).data
        with torch.no_grad():
            u = cheap(x[None])[0]
            if args.enhancer == "tiny_sr":
                e = sr(x[None])[0]
            else:
                e = read_image(work / rel.replace("/frames/", "/hr/")).data
            t = time.perf_counter()
            pred = grid_scores(model(x[None]))[0]
            t_pred += time.perf_counter() - t
        gt = torch.from_numpy(test_labels.raw[i])
        f_c, f_e = test_labels.objective_cheap[i], test_labels.objective_enhanced[i]
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
                t = time.perf_counter()
                _, res = selective_enhance(
                    objective, u, e, mask, block=16, scale=4, objective_cheap=f_c, objective_full=f_e
                )
                t_obj += time.perf_counter() - t
                row[f"{key}@{frac}"] = res.objective_selective
                row[f"cost_{key}@{frac}"] = res.cost
        rows.append(row)
        logging.info("%s: %s", rel, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
    timings["predict_s_per_frame"] = t_pred / len(rows)
    timings["objective_s_per_call"] = t_obj / (len(rows) * len(fractions) * (2 + len(seeds)))

    gain = sum(r["f_full"] - r["f_cheap"] for r in rows)
    summary: dict = {
        "frames": len(rows),
        "total_gain": gain,
        "timings": timings,
        "predictor": info.get("metrics", {}),
    }
    for frac in fractions:
        for key in ("gt", "pred"):
            summary[f"recovered_{key}@{frac}"] = sum(r[f"{key}@{frac}"] - r["f_cheap"] for r in rows) / gain
        summary[f"recovered_random@{frac}"] = (
            sum(sum(r[f"random{s}@{frac}"] for s in seeds) / len(seeds) - r["f_cheap"] for r in rows) / gain
        )
    summary["test_srocc"] = sum(r["srocc"] for r in rows) / len(rows)
    summary["test_iou20"] = sum(r["iou20"] for r in rows) / len(rows)
    (work / "results.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    if args.figure:
        enh = "pristine frame as enhanced (oracle x4)" if args.enhancer == "oracle" else "TinySR x4"
        figure(
            summary,
            rows,
            work,
            test_labels,
            model,
            Path(args.figure),
            fractions,
            f"MTCNN {args.score}, {enh}",
        )


def label_pairs(
    out: Path, inputs: list, objective, sr, cheap, *, frame_step=1, max_frames=None, start=None
) -> LabelSet:
    """Label 4x-downscaled pristine media; the enhanced frame is ``sr(low)`` or, with
    ``sr=None``, the pristine frame itself (saved as ``hr/<name>.png`` for the evaluation)."""
    from PIL import Image

    from qualitas.importance.enhancers import bicubic_down
    from qualitas.importance.label import label_frames
    from qualitas.io.media import media_kind
    from qualitas.io.video import iter_frames

    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "hr").mkdir(parents=True, exist_ok=True)
    current = {}

    def frames():
        for f in map(Path, inputs):
            if media_kind(f) == "image":
                items = [(f.stem, read_image(f).data)]
            else:
                it = iter_frames(f, frame_step=frame_step, max_frames=max_frames, start=start)
                items = ((f"{f.stem}_{fr.index:06d}", fr.data) for fr in it)
            for name, hr in items:
                lr = bicubic_down(hr[None], 4)[0]
                hr = hr[:, : lr.shape[1] * 4, : lr.shape[2] * 4]
                for sub, im in (("frames", lr), ("hr", hr)):
                    arr = (im * 255).round().byte().permute(1, 2, 0).numpy()
                    Image.fromarray(arr).save(out / sub / f"{name}.png")
                current["hr"] = read_image(out / "hr" / f"{name}.png").data
                yield f"frames/{name}.png", read_image(out / "frames" / f"{name}.png").data

    enhance = sr if sr is not None else (lambda x: current["hr"][None])
    labels = label_frames(frames(), objective, enhance, cheap, scale=4, block=16)
    labels.save(out)
    return labels


def merge_labels(a: LabelSet, b: LabelSet) -> LabelSet:
    """Test frames of two label folders; frame paths made relative to the work dir."""
    return LabelSet(
        [f"labels_test/{f}" for f in a.frames] + [f"labels_test_video/{f}" for f in b.frames],
        a.raw + b.raw,
        a.objective_enhanced + b.objective_enhanced,
        a.objective_cheap + b.objective_cheap,
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

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for key, style in (("gt", "o-"), ("pred", "s-"), ("random", "^--")):
        ax.plot(
            [100 * f for f in fractions],
            [100 * summary[f"recovered_{key}@{f}"] for f in fractions],
            style,
            label=key,
        )
    ax.axhline(100, color="gray", lw=0.8)
    ax.axhline(80, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("blocks enhanced (%)")
    ax.set_ylabel("objective gain recovered (%)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    # An example: ground truth and prediction on one test frame.
    i = max(range(len(rows)), key=lambda j: rows[j]["f_full"] - rows[j]["f_cheap"])
    x = read_image(work / labels.frames[i]).data
    gt = normalise(torch.from_numpy(labels.raw[i]))
    with torch.no_grad():
        pred = normalise(grid_scores(model(x[None]))[0].clamp_min(0))
    for ax, g, title in ((axes[1], gt, "ground truth"), (axes[2], pred, "predicted")):
        ax.imshow(x.permute(1, 2, 0).numpy())
        ax.imshow(blocks_to_pixels(g, 16, *x.shape[-2:]).numpy(), alpha=0.55, cmap="inferno", vmin=0, vmax=1)
        ax.set_title(f"{title}: {Path(labels.frames[i]).stem}")
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64)


if __name__ == "__main__":
    main()

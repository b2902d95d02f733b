"""Importance maps on real content: objective recovered by enhancing the top-k% blocks.

Pipeline (all offline, CPU):
1. label every content (a set of photos or a whole video, ``CONTENTS``) and photos no fold
   tests (``OTHER_PHOTOS``) with the MTCNN face objective (``label_pairs``): the
   low-quality input is the pristine frame downscaled 4x, the cheap upscale bicubic, the
   enhanced frame the pristine one (an oracle x4 enhancer; ``--enhancer tiny_sr`` uses
   qualitas' TinySR trained on non-test photos), each at the ``--jitter`` scales (the
   pristine frame resized first: faces of many sizes);
2. per fold (``--folds``: held-out contents), train the importance predictor with the
   training engine on every other content (``configs/importance_faces.yaml`` + overrides);
3. on the held-out frames (scale 1), enhance the ground-truth / predicted / random top-k%
   blocks, paste them into the bicubic upscale and report the share of the
   full-enhancement gain recovered, summed over the frames whose gain is at least
   ``--min-gain`` (all folds pooled and per fold), per-frame figures, and the time of a
   prediction vs a ground-truth label on the same frames (same run).

    python benchmarks/bench_importance.py --work bench-output/imp_cv --run-name mse \
        --figure docs/figures/importance_recovery.png
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
from qualitas.importance.label import LabelSet, block_importance
from qualitas.io.image import read_image

MEDIA = Path("/work/shared/media")
# Contents (whole photos sets / whole videos), each held out as a unit: (path, frame_step, max_frames).
CONTENTS: dict[str, list[tuple[str, int, int]]] = {
    "photos": [
        ("images/matplotlib_grace_hopper.jpg", 1, 1),
        ("images/opencv_messi5.jpg", 1, 1),
        ("images/skimage_astronaut.png", 1, 1),
        ("images/opencv_basketball1.png", 1, 1),
        ("images/opencv_basketball2.png", 1, 1),
    ],
    "carphone": [("videos/carphone_pristine.mp4", 10, 12)],  # carphone_distorted: same content, unused
    "megamind": [("videos/Megamind.avi", 12, 22)],  # Megamind_bugy: same content, unused
    "bunny": [("videos/bigbuckbunny.mp4", 12, 11)],
    "bikes": [("videos/bikes.mp4", 10, 25)],
}
# Always training data: photos that no fold tests -- the cameraman (a face) and scenes
# without faces (false positives of the cascade's first stage are what the predictor must
# learn to ignore).
OTHER_PHOTOS = [
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
TEST_PHOTOS = [p for p, _, _ in CONTENTS["photos"]]  # never used to train TinySR


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="bench-output/importance")
    ap.add_argument("--figure", default=None)
    ap.add_argument(
        "--folds",
        default="photos+carphone,megamind,bunny,bikes",
        help="comma-separated folds; each holds out the '+'-joined contents and trains on the rest",
    )
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--backbone", default="mtcnn_pnet")
    ap.add_argument("--loss", default="mse", choices=("ce", "mse"))
    ap.add_argument("--lr", type=float, default=3.0e-3)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--crop", type=int, default=0, help="block-aligned training crops (0: whole frames)")
    ap.add_argument("--run-name", default="predictor", help="prefix of the trained runs under --work")
    ap.add_argument("--min-face", type=int, default=32)
    ap.add_argument("--jitter", default="1.0,0.6,0.35", help="scales the media are labelled at for training")
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
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    fractions = tuple(float(f) for f in args.fractions.split(","))
    jitter = tuple(float(f) for f in args.jitter.split(","))
    folds = [tuple(f.split("+")) for f in args.folds.split(",")]
    for name in (c for f in folds for c in f):
        if name not in CONTENTS:
            ap.error(f"unknown content '{name}'; choose from {', '.join(CONTENTS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {"threads": args.threads}

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

    labels: dict[str, LabelSet] = {}
    for name, sources in [*CONTENTS.items(), ("other_photos", [(p, 1, 1) for p in OTHER_PHOTOS])]:
        out = work / f"labels_{name}"
        if not (out / "frames.json").is_file():
            t = time.perf_counter()
            lab = label_pairs(
                out, [(MEDIA / p, s, n) for p, s, n in sources], objective, sr, cheap, scales=jitter
            )
            timings[f"label_{name}_s_per_frame"] = (time.perf_counter() - t) / len(lab.frames)
        labels[name] = LabelSet.load(out)
        if not (work / "dataset" / name / "manifest.jsonl").is_file():
            # Per-frame split (groups unset): validation only picks the checkpoint.
            export_dataset(out, work / "dataset" / name, ratios={"train": 0.8, "val": 0.2, "test": 0.0})

    from qualitas.importance.metrics import grid_scores, spearman_per_frame, topk_iou
    from qualitas.training.config import load_config
    from qualitas.training.run import load_trained, train

    rows = []
    t_pred = t_obj = t_label = 0.0
    n_obj = 0
    seeds = range(args.random_seeds)
    models = {}
    for fold in folds:
        fold_name = "+".join(fold)
        # 2. predictor through the training engine, on every content but the fold's
        run_dir = work / f"{args.run_name}_{fold_name}"
        if not (run_dir / "checkpoints" / "best.ckpt").is_file():
            rows_all = []
            for part in [c for c in CONTENTS if c not in fold] + ["other_photos"]:
                for line in (work / "dataset" / part / "manifest.jsonl").read_text().splitlines():
                    row = json.loads(line)
                    row["path"], row["grid"] = f"{part}/{row['path']}", f"{part}/{row['grid']}"
                    rows_all.append(json.dumps(row))
            manifest = work / "dataset" / f"manifest_{fold_name}.jsonl"
            manifest.write_text("\n".join(rows_all) + "\n")
            loss = (
                ["model.num_classes=10", "loss={name: importance_ce, class_weights: balanced}"]
                if args.loss == "ce"
                else ["model.num_classes=0", "loss={name: importance_mse}"]
            )
            sizing = (
                [
                    "data.batch_size=8",
                    f"data.input_size={{mode: crop, size: [{args.crop}, {args.crop}], hflip: true}}",
                ]
                if args.crop
                else ["data.batch_size=1", "data.input_size={mode: none, hflip: true}"]
            )
            cfg = load_config(
                Path(__file__).resolve().parents[1] / "configs" / "importance_faces.yaml",
                [
                    f"data.manifest={manifest}",
                    f"model.backbone={args.backbone}",
                    *loss,
                    *sizing,
                    "data.num_workers=0",
                    f"trainer.max_epochs={args.epochs}",
                    "trainer.accelerator=cpu",
                    "trainer.progress_bar=false",
                    f"optimizer.lr={args.lr}",
                    f"run.seed={args.seed}",
                ],
            )
            t = time.perf_counter()
            train(cfg, out=run_dir)
            timings[f"predictor_train_s_{fold_name}"] = time.perf_counter() - t
        model, _ = load_trained(run_dir)
        model.eval()
        models[fold_name] = model

        # 3. selective enhancement on the held-out frames (unjittered)
        for content in fold:
            lab = labels[content]
            for i, rel in enumerate(lab.frames):
                if lab.meta["scales"][i] != 1.0:
                    continue
                x = read_image(work / f"labels_{content}" / rel).data
                with torch.no_grad():
                    u = cheap(x[None])[0].clamp(0, 1)
                    e = (
                        sr(x[None])[0].clamp(0, 1)
                        if sr is not None
                        else read_image(work / f"labels_{content}" / hr_path(rel)).data
                    )
                    t = time.perf_counter()
                    pred = grid_scores(model(x[None]))[0]
                    t_pred += time.perf_counter() - t
                # Same frame, same run: what a ground-truth label costs (detection + backward).
                t = time.perf_counter()
                block_importance(reference_objective(objective, e[None]), e[None], u[None], scale=4, block=16)
                t_label += time.perf_counter() - t
                t = time.perf_counter()
                with torch.no_grad():
                    obj = reference_objective(objective, e[None])  # boxes of e, once per frame
                    f_c, f_e = float(obj(u[None])[0]), float(obj(e[None])[0])
                gt = torch.from_numpy(lab.raw[i])
                row = {
                    "fold": fold_name,
                    "content": content,
                    "frame": f"labels_{content}/{rel}",
                    "f_cheap": f_c,
                    "f_full": f_e,
                    "gain": f_e - f_c,
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
                    rnd = statistics.fmean(row[f"random{s}@{frac}"] for s in seeds)
                    for key, val in (
                        ("gt", row[f"gt@{frac}"]),
                        ("pred", row[f"pred@{frac}"]),
                        ("random", rnd),
                    ):
                        row[f"rec_{key}@{frac}"] = (val - f_c) / row["gain"] if row["gain"] else float("nan")
                t_obj += time.perf_counter() - t
                rows.append(row)
                logging.info(
                    "%s: gain %.3f srocc %.2f iou20 %.2f rec@0.2 gt %.2f pred %.2f random %.2f",
                    row["frame"], row["gain"], row["srocc"], row["iou20"],
                    row.get("rec_gt@0.2", float("nan")), row.get("rec_pred@0.2", float("nan")),
                    row.get("rec_random@0.2", float("nan")),
                )  # fmt: skip
    timings["predict_s_per_frame"] = t_pred / len(rows)
    timings["label_s_per_frame"] = t_label / len(rows)
    timings["objective_s_per_call"] = t_obj / (n_obj + 2 * len(rows))

    summary: dict = {
        "boxes": args.boxes,
        "backbone": args.backbone,
        "loss": args.loss,
        "seed": args.seed,
        "timings": timings,
        "all": summarise(rows, fractions, seeds, args.min_gain),
    }
    for fold in folds:
        name = "+".join(fold)
        summary[name] = summarise([r for r in rows if r["fold"] == name], fractions, seeds, args.min_gain)
    (work / f"results_{args.run_name}_{args.boxes}.json").write_text(
        json.dumps({"summary": summary, "rows": rows}, indent=1)
    )
    print(json.dumps(summary, indent=1))
    if args.figure:
        enh = "oracle x4 enhancer" if sr is None else "TinySR x4"
        n = summary["all"]["frames_counted"]
        title = f"MTCNN logit ({args.boxes} boxes), {enh}\n{n} held-out frames, {len(folds)} folds"
        figure(summary["all"], rows, work, models, Path(args.figure), fractions, title)


def summarise(rows: list[dict], fractions: tuple, seeds: range, min_gain: float) -> dict:
    """Share of the gain recovered, summed over the frames whose full-enhancement gain is at
    least ``min_gain`` (and the per-frame median), for ground truth, predicted and random."""
    counted = [r for r in rows if r["gain"] >= min_gain]
    out: dict = {"frames": len(rows), "frames_counted": len(counted), "min_gain": min_gain}
    if not counted:
        return out
    gain = out["total_gain"] = sum(r["gain"] for r in counted)
    for frac in fractions:
        for key in ("gt", "pred"):
            out[f"recovered_{key}@{frac}"] = sum(r[f"{key}@{frac}"] - r["f_cheap"] for r in counted) / gain
        per_seed = [sum(r[f"random{s}@{frac}"] - r["f_cheap"] for r in counted) / gain for s in seeds]
        out[f"recovered_random@{frac}"] = statistics.fmean(per_seed)
        out[f"recovered_random_sd@{frac}"] = statistics.pstdev(per_seed)
        for key in ("gt", "pred", "random"):
            out[f"median_{key}@{frac}"] = statistics.median(r[f"rec_{key}@{frac}"] for r in counted)
    # Rank figures over the frames whose ground truth is not constant (a face was found).
    ranked = [r for r in rows if r["srocc"] == r["srocc"]]
    out["frames_ranked"] = len(ranked)
    out["srocc"] = statistics.fmean(r["srocc"] for r in ranked) if ranked else float("nan")
    out["iou20"] = statistics.fmean(r["iou20"] for r in ranked) if ranked else float("nan")
    return out


def hr_path(rel: str) -> str:
    """``frames/<name>.png`` -> ``hr/<name>.png`` (the pristine frame saved by ``label_pairs``)."""
    folder, name = rel.rsplit("/", 1)
    return f"{folder.removesuffix('frames')}hr/{name}"


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
    frame_scales: list[float] = []

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
                    if s != 1.0 and min(hr.shape[1:]) * s < 4 * 32:
                        continue  # the low-res frame would be under two blocks high
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
                    frame_scales.append(s)
                    yield f"frames/{name_s}.png", read_image(out / "frames" / f"{name_s}.png").data

    enhance = sr if sr is not None else (lambda x: current["hr"][None])
    labels = label_frames(frames(), objective, enhance, cheap, scale=4, block=16)
    labels.meta = {"groups": groups, "scales": frame_scales}
    labels.save(out)
    return labels


def figure(
    summary: dict, rows: list, work: Path, models: dict, path: Path, fractions: tuple, title: str
) -> None:
    """Recovery curves (all held-out frames) and ground-truth vs predicted maps on the held-out
    frames with the largest gain of three contents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qualitas.importance.grid import blocks_to_pixels, normalise
    from qualitas.importance.label import LabelSet
    from qualitas.importance.metrics import grid_scores

    shown = []
    for content in ("photos", "carphone", "bikes"):
        mine = [r for r in rows if r["content"] == content]
        if mine:
            shown.append(max(mine, key=lambda r: r["gain"]))
    fig, axes = plt.subplots(2, 1 + len(shown), figsize=(3.6 * (1 + len(shown)), 6.4), squeeze=False)
    ax = axes[0, 0]
    names = {"gt": "ground-truth top", "pred": "predicted top", "random": "random (mean of seeds)"}
    for key, style in (("gt", "o-"), ("pred", "s-"), ("random", "^--")):
        ax.plot(
            [100 * f for f in fractions],
            [100 * summary[f"recovered_{key}@{f}"] for f in fractions],
            style,
            label=names[key],
        )
    ax.axhline(100, color="gray", lw=0.8)
    ax.axhline(80, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("blocks enhanced (%)")
    ax.set_ylabel("objective gain recovered (%)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    axes[1, 0].axis("off")
    for col, row in enumerate(shown, start=1):
        folder, rel = row["frame"].split("/", 1)
        lab = LabelSet.load(work / folder)
        gt = normalise(torch.from_numpy(lab.raw[lab.frames.index(rel)]))
        x = read_image(work / row["frame"]).data
        with torch.no_grad():
            pred = normalise(grid_scores(models[row["fold"]](x[None]))[0].clamp_min(0))
        for r, (g, name) in enumerate(((gt, "ground truth"), (pred, "predicted (held out)"))):
            ax = axes[r, col]
            ax.imshow(x.permute(1, 2, 0).numpy())
            ax.imshow(
                blocks_to_pixels(g, 16, *x.shape[-2:]).numpy(), alpha=0.55, cmap="inferno", vmin=0, vmax=1
            )
            ax.set_title(f"{name}: {Path(rel).stem}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64)


if __name__ == "__main__":
    main()

"""Importance with a trained detector (RegenHance's setting: vehicles and pedestrians, x3
super-resolution) beside the face / MTCNN setting of ``bench_importance_rdn.py``.

1. ``--make-data DIR``: synthetic street-like scenes in COCO layout — crops of real photos
   (``/work/shared/media/images``; every fifth photo, sorted, is kept for the test split
   only) with drawn pedestrians (head, torso, arms, legs; textured clothes) and vehicles
   (body, cabin, windows, wheels with hubs, grille), 384x288, 1-5 objects each:
   ``DIR/{train,val,test}/images/*.png`` + ``DIR/{train,val,test}/annotations.json``.
2. Train a detector with the toolbox (``task: detection``, docs/tasks.md)::

       python benchmarks/bench_importance_detector.py --make-data bench-output/streets
       qualitas train configs/detection.yaml --out runs/streets \\
           -o data.train=bench-output/streets/train/annotations.json \\
           -o data.val=bench-output/streets/val/annotations.json ...

3. ``--run RUN``: for each test scene, the pristine frame is downscaled x3 (antialiased
   bicubic, 8 bits, as ``qualitas importance label --downscale`` does), upscaled cheaply
   (bicubic) and by the enhancers (``rdn_medium``, ``rdn_slim``: the shipped UpscalerJS
   RDNs; ``tiny_sr``: qualitas' TinySR trained on the training photos; ``oracle``: the
   pristine frame). The objective is the detector analytics of docs/importance.md
   (``detector:boxes=reference,score=logit``: the detector's logit at the boxes it finds on
   the enhanced frame), and the ground-truth label (``grad_x_diff``, 16x16 low-res blocks)
   ranks the blocks; top-k% pasted into the bicubic frame recover what share of the
   full-frame gain, against random blocks and the blocks the enhancer changes most. Also the
   detector's VOC mAP@0.5 on the test scenes as pristine / bicubic / enhanced frames.

    python benchmarks/bench_importance_detector.py --run runs/streets \\
        --data bench-output/streets --work bench-output/importance_detector \\
        --figure docs/figures/importance_detector_recovery.png
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_importance_rdn import neg_mse, psnr_of, summarise  # noqa: E402

MEDIA = Path("/work/shared/media/images")
CLASSES = ("person", "vehicle")
W, H = 384, 288
BLOCK = 16
ENHANCERS = ("rdn_medium", "rdn_slim", "tiny_sr", "oracle")


def backgrounds(split: str) -> list[Path]:
    """Every fifth photo (sorted) is a test background; the others train/val."""
    photos = sorted(Path(p) for p in glob.glob(str(MEDIA / "*")))
    test = photos[::5]
    return test if split == "test" else [p for p in photos if p not in test]


def _colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def _stripes(draw: ImageDraw.ImageDraw, box, rng, colour) -> None:
    """Fine stripes: high-frequency detail that a x3 downscale erases and SR may restore."""
    x1, y1, x2, y2 = box
    step = int(rng.integers(3, 6))
    for y in range(int(y1), int(y2), step):
        draw.line([x1, y, x2, y], fill=colour, width=1)


def draw_person(draw: ImageDraw.ImageDraw, x: int, y: int, h: int, rng) -> tuple[int, int, int, int]:
    """A pedestrian of height ``h`` standing with its feet at ``(x, y + h)``; returns its box."""
    w = max(8, int(h * rng.uniform(0.32, 0.42)))
    head = h * 0.16
    skin = _colour(rng, 90, 230)
    shirt, trousers = _colour(rng), _colour(rng, 0, 160)
    cx = x + w / 2
    draw.ellipse([cx - head / 2, y, cx + head / 2, y + head], fill=skin, outline=(30, 20, 20))
    torso = [x + w * 0.18, y + head * 1.05, x + w * 0.82, y + h * 0.58]
    draw.rectangle(torso, fill=shirt)
    _stripes(draw, torso, rng, tuple(max(0, c - 70) for c in shirt))
    draw.rectangle([x, y + head * 1.15, x + w * 0.17, y + h * 0.55], fill=shirt)  # arms
    draw.rectangle([x + w * 0.83, y + head * 1.15, x + w, y + h * 0.55], fill=shirt)
    draw.rectangle([x + w * 0.2, y + h * 0.58, x + w * 0.47, y + h], fill=trousers)  # legs
    draw.rectangle([x + w * 0.53, y + h * 0.58, x + w * 0.8, y + h], fill=trousers)
    return x, y, x + w, y + h


def draw_vehicle(draw: ImageDraw.ImageDraw, x: int, y: int, w: int, rng) -> tuple[int, int, int, int]:
    """A side-view car of width ``w`` with its top-left at ``(x, y)``; returns its box."""
    h = int(w * rng.uniform(0.42, 0.55))
    body = _colour(rng)
    glass = _colour(rng, 20, 90)
    draw.rounded_rectangle([x, y + h * 0.38, x + w, y + h * 0.82], radius=max(2, h // 8), fill=body)
    draw.polygon(
        [(x + w * 0.2, y + h * 0.4), (x + w * 0.32, y), (x + w * 0.72, y), (x + w * 0.85, y + h * 0.4)],
        fill=body,
    )
    draw.polygon(
        [(x + w * 0.27, y + h * 0.38), (x + w * 0.35, y + h * 0.08), (x + w * 0.5, y + h * 0.08), (x + w * 0.5, y + h * 0.38)],
        fill=glass,
    )  # fmt: skip
    draw.polygon(
        [(x + w * 0.53, y + h * 0.38), (x + w * 0.53, y + h * 0.08), (x + w * 0.7, y + h * 0.08), (x + w * 0.79, y + h * 0.38)],
        fill=glass,
    )  # fmt: skip
    _stripes(draw, [x + w * 0.88, y + h * 0.45, x + w * 0.99, y + h * 0.7], rng, (40, 40, 40))  # grille
    r = h * 0.19
    for cx in (x + w * 0.22, x + w * 0.78):
        draw.ellipse([cx - r, y + h - 2 * r, cx + r, y + h], fill=(15, 15, 15))
        draw.ellipse([cx - r / 2, y + h - 1.5 * r, cx + r / 2, y + h - 0.5 * r], fill=(170, 170, 170))
    return x, y, x + w, y + h


def scene(photo: Path, rng: np.random.Generator) -> tuple[Image.Image, list[tuple[list[float], int]]]:
    """One 384x288 scene: a random crop of ``photo`` and 1-5 objects; ``(box xyxy, category)``."""
    bg = Image.open(photo).convert("RGB")
    s = max(W / bg.width, H / bg.height) * rng.uniform(1.0, 1.6)
    bg = bg.resize((max(W, round(bg.width * s)), max(H, round(bg.height * s))), Image.BICUBIC)
    ox, oy = int(rng.integers(0, bg.width - W + 1)), int(rng.integers(0, bg.height - H + 1))
    img = bg.crop((ox, oy, ox + W, oy + H))
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    objects = []
    for _ in range(int(rng.integers(1, 6))):
        if rng.random() < 0.5:
            h = int(rng.integers(40, 120))
            x, y = int(rng.integers(0, W - h // 2)), int(rng.integers(0, H - h))
            box, cat = draw_person(draw, x, y, h, rng), 1
        else:
            w = int(rng.integers(60, 160))
            x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - int(w * 0.56)))
            box, cat = draw_vehicle(draw, x, y, w, rng), 2
        objects.append(([float(v) for v in box], cat))
    # A touch of blur and noise so the objects are photographed, not vector-sharp.
    layer = layer.filter(ImageFilter.GaussianBlur(0.6))
    img.paste(layer, (0, 0), layer)
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, 3, (H, W, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), objects


def make_data(root: Path, counts: dict[str, int], seed: int = 0) -> None:
    """Write the three splits in COCO layout (``images/`` + ``annotations.json``)."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        folder = root / split / "images"
        folder.mkdir(parents=True, exist_ok=True)
        photos = backgrounds(split)
        images, annotations = [], []
        for i in range(n):
            img, objects = scene(photos[i % len(photos)], rng)
            name = f"{split}_{i:04d}.png"
            img.save(folder / name)
            images.append({"id": i + 1, "file_name": name, "width": W, "height": H})
            for box, cat in objects:
                x1, y1, x2, y2 = box
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i + 1,
                        "category_id": cat,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        coco = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)],
        }
        (root / split / "annotations.json").write_text(json.dumps(coco))
        logging.info("%s: %d images, %d objects", split, n, len(annotations))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-data", type=Path, help="write the synthetic scenes here and stop")
    ap.add_argument("--counts", default="600,80,24", help="train,val,test scenes")
    ap.add_argument("--run", help="the trained detection run (run dir or .ckpt)")
    ap.add_argument("--data", type=Path, default=Path("bench-output/streets"))
    ap.add_argument("--work", type=Path, default=Path("bench-output/importance_detector"))
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--fractions", default="0.1,0.2,0.4")
    ap.add_argument("--random-seeds", type=int, default=10)
    ap.add_argument(
        "--min-gain", type=float, default=0.5, help="frames with a smaller logit gain are not summed"
    )
    ap.add_argument("--threshold", type=float, default=0.5, help="reference boxes: detections at or above")
    ap.add_argument("--enhancers", default=",".join(ENHANCERS))
    ap.add_argument("--sr-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.make_data:
        counts = dict(zip(("train", "val", "test"), (int(c) for c in args.counts.split(","))))
        make_data(args.make_data, counts)
        return
    if not args.run:
        ap.error("give --make-data DIR or --run RUN")
    evaluate(args)


def evaluate(args: argparse.Namespace) -> None:
    from qualitas.data.detection import read_coco
    from qualitas.importance.analytics import DetectorObjective, reference_objective
    from qualitas.importance.apply import selective_frame
    from qualitas.importance.enhancers import Bicubic, TinySR, bicubic_down, build_enhancer, train_tiny_sr
    from qualitas.importance.grid import block_sum, select_random, select_topk
    from qualitas.importance.label import block_importance
    from qualitas.io.image import read_image
    from qualitas.models.detection import load_detector

    scale = 3
    fractions = tuple(float(f) for f in args.fractions.split(","))
    names = args.enhancers.split(",")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    model, spec, classes = load_detector(args.run)
    timings: dict[str, float] = {"threads": args.threads}
    enhancers: dict = {}
    for name in names:
        if name.startswith("rdn_"):
            enhancers[name] = build_enhancer(f"rdn:variant={name[4:]}", scale=scale)
        elif name == "tiny_sr":
            path = work / f"tiny_sr_x{scale}.pth"
            if not path.is_file():
                pristine = [read_image(p).data for p in backgrounds("train")]
                t = time.perf_counter()
                torch.save(train_tiny_sr(pristine, scale=scale, steps=args.sr_steps).state_dict(), path)
                timings["tiny_sr_train_s"] = time.perf_counter() - t
            net = TinySR(scale)
            net.load_state_dict(torch.load(path, weights_only=True))
            enhancers[name] = net.eval()
        elif name != "oracle":
            raise SystemExit(f"unknown enhancer {name}")
    cheap = Bicubic(scale)
    objective = DetectorObjective(model, threshold=args.threshold, score="logit", boxes="reference")
    test_set = read_coco(args.data / "test" / "annotations.json")
    seeds = range(args.random_seeds)
    rows = []
    detections: dict[str, list] = {"pristine": [], "bicubic": [], **{n: [] for n in names if n != "oracle"}}
    t0 = time.perf_counter()
    for im in test_set.images:
        hr = read_image(args.data / "test" / "images" / im.file).data
        x = ((bicubic_down(hr[None], scale)) * 255).round().clamp(0, 255) / 255
        with torch.no_grad():
            u = cheap(x).clamp(0, 1)
            frames = {"pristine": hr[None], "bicubic": u}
            outs = {n: (hr[None] if n == "oracle" else enhancers[n](x).clamp(0, 1)) for n in names}
            frames.update({n: e for n, e in outs.items() if n != "oracle"})
            for key, frame in frames.items():
                det = model(list(frame))[0]
                detections[key].append({k: v.detach() for k, v in det.items()})
        for name in names:
            e = outs[name]
            row = {"frame": im.file, "enhancer": name}
            diff = block_sum(((e - u) ** 2).sum(1), BLOCK * scale)[0]
            for obj_name, base in (("psnr", neg_mse(hr[None])), ("detector", objective)):
                obj = reference_objective(base, e)
                if obj_name == "psnr":
                    gain_px = ((u - hr[None]) ** 2 - (e - hr[None]) ** 2).sum(1)
                    gt = block_sum(gain_px, BLOCK * scale)[0]
                    with torch.no_grad():
                        f_e = float(obj(e)[0])
                else:
                    g, v = block_importance(obj, e, u, scale=scale, block=BLOCK)
                    gt, f_e = g[0], float(v[0])
                    row["reference_boxes"] = len(obj.boxes) if hasattr(obj, "boxes") else 0
                with torch.no_grad():
                    f_c = float(obj(u)[0])
                row[f"{obj_name}_cheap"], row[f"{obj_name}_full"] = f_c, f_e
                for frac in fractions:
                    masks = {"gt": select_topk(gt, frac), "diff": select_topk(diff, frac)}
                    masks.update(
                        {
                            f"random{s}": select_random(gt.shape, frac, torch.Generator().manual_seed(s))
                            for s in seeds
                        }
                    )
                    for key, mask in masks.items():
                        frame, _ = selective_frame(u[0], e[0], mask, block=BLOCK, scale=scale)
                        with torch.no_grad():
                            row[f"{obj_name}_{key}@{frac}"] = float(obj(frame[None])[0])
                    row[f"{obj_name}_random@{frac}"] = statistics.fmean(
                        row[f"{obj_name}_random{s}@{frac}"] for s in seeds
                    )
            rows.append(row)
            logging.info(
                "%s %s: PSNR cheap %.2f full %.2f | detector gain %.2f (%d boxes)",
                im.file, name, psnr_of(row["psnr_cheap"]), psnr_of(row["psnr_full"]),
                row["detector_full"] - row["detector_cheap"], row["reference_boxes"],
            )  # fmt: skip
    timings["seconds"] = time.perf_counter() - t0
    summary: dict = {"timings": timings, "frames": len(test_set.images), "classes": classes, "arch": spec.family}
    summary["map50"] = {key: test_map(test_set, dets) for key, dets in detections.items()}
    for name in names:
        mine = [r for r in rows if r["enhancer"] == name]
        summary[name] = {
            "psnr": summarise(mine, "psnr", fractions, seeds, None),
            "detector": summarise(mine, "detector", fractions, seeds, args.min_gain),
        }
    (work / "results.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    if args.figure:
        figure(summary, names, fractions, args.figure)


def test_map(gt, dets: list[dict]) -> float:
    """VOC mAP@0.5 of torchvision detections (one dict per image of ``gt``, in order)."""
    from qualitas.evaluation.detection import Detection, voc_map

    preds = [
        [
            Detection(*b, category=int(c), score=float(s))
            for b, c, s in zip(d["boxes"].tolist(), d["labels"], d["scores"])
        ]
        for d in dets
    ]
    return voc_map(gt, preds)["map"]


def figure(summary: dict, names: list, fractions: tuple, path: Path) -> None:
    """Share of the detector-logit gain recovered by the top-k% blocks of the ground-truth
    label, against random blocks, per enhancer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs = [100 * f for f in fractions]
    for i, name in enumerate(names):
        m = summary[name]["detector"]
        if f"recovered_gt@{fractions[0]}" not in m:
            continue
        n = m["frames_counted"]
        ax.plot(
            xs,
            [100 * m[f"recovered_gt@{f}"] for f in fractions],
            "o-",
            color=f"C{i}",
            label=f"{name} top-k ({n} frames)",
        )
        ax.plot(
            xs,
            [100 * m[f"recovered_random@{f}"] for f in fractions],
            "^--",
            color=f"C{i}",
            alpha=0.6,
            label=f"{name} random",
        )
    ax.axhline(100, color="gray", lw=0.8)
    ax.axhline(0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("blocks enhanced (%)")
    ax.set_ylabel("detector-logit gain recovered (%)")
    ax.set_title("x3: trained person/vehicle detector, boxes=reference", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64)


if __name__ == "__main__":
    main()

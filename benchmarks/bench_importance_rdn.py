"""Selective enhancement with the pretrained RDN (UpscalerJS esrgan-slim/medium, x3) against
TinySR and the oracle, on real content: what share of the full-frame gain do the top-k%
macroblocks recover, against random blocks and against bicubic upscaling (0%)?

Setup: every frame of the ``bench_importance.CONTENTS`` (5 photos with faces, frames of
carphone, Megamind, Big Buck Bunny, bikes) is cropped to a multiple of 3 and downscaled 3x
(antialiased bicubic, saved to 8 bits as ``qualitas importance label --downscale`` does);
the cheap upscale is bicubic x3; the enhancers are ``rdn:variant=medium``,
``rdn:variant=slim`` (shipped weights), ``tiny_sr`` (qualitas' TinySR, x3, trained here
on the media photos that are not test photos) and ``oracle`` (the pristine frame). Two
objectives, each a per-frame number with a gradient, so the pipeline's own ground truth
(``grad_x_diff`` block importance, 16x16 low-res blocks) ranks the blocks:

* ``psnr``: ``f = -MSE(frame, pristine)``; recovered = share of the full-frame MSE
  reduction (linear in the pasted blocks), and the PSNR in dB of cheap / selective / full;
* ``mtcnn``: the face objective of docs/importance.md (``score=logit``, threshold 0.9,
  ``min_face=32``, ``boxes=reference``: boxes of the enhanced frame), summed over the
  frames whose full enhancement gains at least ``--min-gain`` logit.

Random = mean over ``--random-seeds`` selections of the same number of blocks.

    python benchmarks/bench_importance_rdn.py --work bench-output/importance_rdn \\
        --figure docs/figures/importance_rdn_recovery.png
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_importance import CONTENTS, MEDIA, TEST_PHOTOS  # noqa: E402

from qualitas.importance.analytics import MTCNNObjective, reference_objective  # noqa: E402
from qualitas.importance.apply import selective_frame  # noqa: E402
from qualitas.importance.enhancers import (  # noqa: E402
    Bicubic,
    TinySR,
    bicubic_down,
    build_enhancer,
    train_tiny_sr,
)
from qualitas.importance.grid import block_sum, select_random, select_topk  # noqa: E402
from qualitas.importance.label import block_importance  # noqa: E402
from qualitas.io.image import read_image  # noqa: E402

BLOCK = 16
ENHANCERS = ("rdn_medium", "rdn_slim", "tiny_sr", "oracle")


def frames(scale: int):
    """``(content, name, pristine (3, H, W) cropped to a multiple of scale, low-res 8-bit)``."""
    from qualitas.io.media import media_kind
    from qualitas.io.video import iter_frames

    for content, sources in CONTENTS.items():
        for rel, step, count in sources:
            f = MEDIA / rel
            if media_kind(f) == "image":
                items = [(f.stem, read_image(f).data)]
            else:
                items = [
                    (f"{f.stem}_{fr.index:06d}", fr.data)
                    for fr in iter_frames(f, frame_step=step, max_frames=count)
                ]
            for name, hr in items:
                h, w = hr.shape[-2] // scale * scale, hr.shape[-1] // scale * scale
                hr = hr[:, :h, :w]
                lr = (bicubic_down(hr[None], scale)[0] * 255).round() / 255
                yield content, name, hr, lr


def neg_mse(reference: torch.Tensor):
    def f(x: torch.Tensor) -> torch.Tensor:
        return -((x - reference) ** 2).mean(dim=(1, 2, 3))

    return f


def psnr_of(neg: float) -> float:
    import math

    return -10 * math.log10(max(-neg, 1e-12))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="bench-output/importance_rdn")
    ap.add_argument("--figure", default=None)
    ap.add_argument("--fractions", default="0.1,0.2,0.4")
    ap.add_argument("--random-seeds", type=int, default=10)
    ap.add_argument(
        "--min-gain", type=float, default=0.5, help="mtcnn: frames with a smaller gain are not summed"
    )
    ap.add_argument("--sr-steps", type=int, default=300)
    ap.add_argument("--enhancers", default=",".join(ENHANCERS))
    ap.add_argument("--scale", type=int, default=3, help="downscale and enhancement factor (2, 3 or 4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-frames", type=int, default=None, help="first N frames only (a quick look)")
    args = ap.parse_args()
    scale = args.scale
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    fractions = tuple(float(f) for f in args.fractions.split(","))
    names = args.enhancers.split(",")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {"threads": args.threads}

    enhancers: dict = {}
    for name in names:
        if name.startswith("rdn_"):
            enhancers[name] = build_enhancer(f"rdn:variant={name[4:]}", scale=scale)
        elif name == "tiny_sr":
            path = work / f"tiny_sr_x{scale}.pth"
            if not path.is_file():
                test = {Path(p).name for p in TEST_PHOTOS}
                pristine = [
                    read_image(p).data
                    for p in sorted(glob.glob(str(MEDIA / "images/*")))
                    if Path(p).name not in test
                ]
                t = time.perf_counter()
                torch.save(train_tiny_sr(pristine, scale=scale, steps=args.sr_steps).state_dict(), path)
                timings["tiny_sr_train_s"] = time.perf_counter() - t
            net = TinySR(scale)
            net.load_state_dict(torch.load(path, weights_only=True))
            enhancers[name] = net.eval()
        elif name != "oracle":
            ap.error(f"unknown enhancer {name}")
    cheap = Bicubic(scale)
    mtcnn = MTCNNObjective(min_face=32, threshold=0.9, score="logit", boxes="reference")
    seeds = range(args.random_seeds)
    rows = []
    enh_time = {n: 0.0 for n in names}
    pixels = 0
    for i, (content, fname, hr, lr) in enumerate(frames(scale)):
        if args.max_frames is not None and i >= args.max_frames:
            break
        x = lr[None]
        with torch.no_grad():
            u = cheap(x).clamp(0, 1)
        pixels += hr.shape[-1] * hr.shape[-2]
        for name in names:
            t = time.perf_counter()
            with torch.no_grad():
                e = hr[None] if name == "oracle" else enhancers[name](x).clamp(0, 1)
            enh_time[name] += time.perf_counter() - t
            row = {"content": content, "frame": fname, "enhancer": name, "size": list(hr.shape[-2:])}
            # Enhancer-only ranking (no pristine frame, no analytics): where e changes u most.
            diff = block_sum(((e - u) ** 2).sum(1), BLOCK * scale)[0]
            for obj_name, base in (("psnr", neg_mse(hr[None])), ("mtcnn", mtcnn)):
                obj = reference_objective(base, e)  # mtcnn: boxes of e; psnr: itself
                if obj_name == "psnr":
                    # -MSE is additive over blocks: rank by each block's exact MSE reduction
                    # (an oracle: it needs the pristine frame). The first-order label at e
                    # degenerates here (zero gradient at e = pristine).
                    gain_px = ((u - hr[None]) ** 2 - (e - hr[None]) ** 2).sum(1)
                    gt = block_sum(gain_px, BLOCK * scale)[0]
                    with torch.no_grad():
                        f_e = float(obj(e)[0])
                else:
                    g, v = block_importance(obj, e, u, scale=scale, block=BLOCK)
                    gt, f_e = g[0], float(v[0])
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
                        frame, cost = selective_frame(u[0], e[0], mask, block=BLOCK, scale=scale)
                        with torch.no_grad():
                            row[f"{obj_name}_{key}@{frac}"] = float(obj(frame[None])[0])
                    row[f"{obj_name}_random@{frac}"] = statistics.fmean(
                        row[f"{obj_name}_random{s}@{frac}"] for s in seeds
                    )
            rows.append(row)
            logging.info(
                "%s %s: PSNR cheap %.2f full %.2f top20 %.2f | mtcnn gain %.2f",
                fname, name, psnr_of(row["psnr_cheap"]), psnr_of(row["psnr_full"]),
                psnr_of(row["psnr_gt@0.2"]) if 0.2 in fractions else float("nan"),
                row["mtcnn_full"] - row["mtcnn_cheap"],
            )  # fmt: skip
    timings.update({f"{n}_s_per_megapixel": enh_time[n] / (pixels / 1e6) for n in names})
    summary = {"timings": timings, "frames": len(rows) // len(names)}
    for name in names:
        mine = [r for r in rows if r["enhancer"] == name]
        summary[name] = {
            "psnr": summarise(mine, "psnr", fractions, seeds, None),
            "mtcnn": summarise(mine, "mtcnn", fractions, seeds, args.min_gain),
        }
    (work / "results.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    if args.figure:
        figure(summary, names, fractions, Path(args.figure), scale)


def summarise(rows: list[dict], obj: str, fractions: tuple, seeds: range, min_gain: float | None) -> dict:
    """Share of the summed full-frame gain recovered: ``gt`` top-k (psnr: exact block gain;
    mtcnn: the pipeline's ground-truth label), ``diff`` top-k (largest enhancer change),
    random (mean ± sd over seeds).

    ``psnr``: all frames (MSE gains, signed: frames where full enhancement raises the MSE
    count negatively); ``mtcnn``: frames whose gain is at least ``min_gain``."""
    counted = [r for r in rows if min_gain is None or r[f"{obj}_full"] - r[f"{obj}_cheap"] >= min_gain]
    out: dict = {"frames_counted": len(counted)}
    if not counted:
        return out
    gain = sum(r[f"{obj}_full"] - r[f"{obj}_cheap"] for r in counted)
    out["total_gain"] = gain
    out["frames_gaining"] = sum(r[f"{obj}_full"] > r[f"{obj}_cheap"] for r in rows)
    if obj == "psnr":  # pooled PSNR: of the MSE averaged over all frames
        for key in ("cheap", "full"):
            out[f"psnr_{key}_db"] = psnr_of(statistics.fmean(r[f"psnr_{key}"] for r in counted))
    for frac in fractions:
        for key in ("gt", "diff"):
            out[f"recovered_{key}@{frac}"] = (
                sum(r[f"{obj}_{key}@{frac}"] - r[f"{obj}_cheap"] for r in counted) / gain
            )
        per_seed = [
            sum(r[f"{obj}_random{s}@{frac}"] - r[f"{obj}_cheap"] for r in counted) / gain for s in seeds
        ]
        out[f"recovered_random@{frac}"] = statistics.fmean(per_seed)
        out[f"recovered_random_sd@{frac}"] = statistics.pstdev(per_seed)
        if obj == "psnr":
            for key in ("gt", "diff", "random"):
                out[f"psnr_{key}_db@{frac}"] = psnr_of(
                    statistics.fmean(r[f"psnr_{key}@{frac}"] for r in counted)
                )
    return out


def figure(summary: dict, names: list, fractions: tuple, path: Path, scale: int) -> None:
    """Left: pooled PSNR of the selectively enhanced frames (top-k by exact block gain, largest
    enhancer change, random), bicubic and full-frame enhancement (at 0% / 100%); the oracle
    is left out (its full frame is exact). Right: share of the MTCNN gain recovered."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    xs = [100 * f for f in fractions]
    for i, name in enumerate(names):
        c = f"C{i}"
        s = summary[name]["psnr"]
        if name != "oracle":
            for key, style, label in (
                ("gt", "o-", "top-k"),
                ("diff", "s:", "largest change"),
                ("random", "^--", "random"),
            ):
                ys = [s["psnr_cheap_db"], *(s[f"psnr_{key}_db@{f}"] for f in fractions), s["psnr_full_db"]]
                left.plot(
                    [0, *xs, 100],
                    ys,
                    style,
                    color=c,
                    alpha=1.0 if key == "gt" else 0.6,
                    label=f"{name} {label}",
                )
        m = summary[name]["mtcnn"]
        if f"recovered_gt@{fractions[0]}" in m:
            n = m["frames_counted"]
            right.plot(
                xs,
                [100 * m[f"recovered_gt@{f}"] for f in fractions],
                "o-",
                color=c,
                label=f"{name} top-k ({n} frames)",
            )
            right.plot(
                xs,
                [100 * m[f"recovered_random@{f}"] for f in fractions],
                "^--",
                color=c,
                alpha=0.6,
                label=f"{name} random",
            )
    left.set_xlabel("blocks enhanced (%)  (0 = bicubic, 100 = full frame)")
    left.set_ylabel("PSNR over all frames (dB)")
    left.set_title(f"x{scale}: PSNR, top-k = exact block MSE gain", fontsize=8)
    left.legend(fontsize=5, ncol=2)
    right.axhline(100, color="gray", lw=0.8)
    right.axhline(0, color="gray", lw=0.8, ls=":")
    right.set_xlabel("blocks enhanced (%)")
    right.set_ylabel("face-logit gain recovered (%)")
    right.set_title(f"x{scale}: MTCNN logit, frames gaining >= 0.5; top-k = ground-truth label", fontsize=8)
    right.legend(fontsize=5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64)


if __name__ == "__main__":
    main()

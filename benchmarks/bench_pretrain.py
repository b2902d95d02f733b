"""Self-supervised pretraining, measured small on this CPU: does it make better quality features?

Pretrains tf_efficientnet_lite0 on the shared photos and frames of the shared clips
(../shared/media, no labels used), then linear-probes (frozen backbone, ridge on the
multi-stage statistics, ``qualitas probe``) a synthetic distortion ladder of *held-out*
photos (other contents; grouped so near-duplicates such as aloeL/aloeR stay on one side).
Compared side by side: random init, ImageNet EfficientNet-Lite0 (offline weights), SimCLR
from random init, CONTRIQUE-style from random init, and CONTRIQUE-style continued from ImageNet.

The CONTRIQUE classes use 6 distortion types; the probe ladder has those 6 and 6 types never
used in pretraining, reported separately (test SROCC per type, averaged) so a gain on
"seen" types is not mistaken for general quality awareness.

    nice -n 10 python benchmarks/bench_pretrain.py --work /tmp/bench_pretrain [--epochs 8]

Prints a markdown table and writes ``results.json`` under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "Megamind.avi")
"""Clips with no added damage (carphone_distorted and Megamind_bugy are left out)."""
SEEN = ("gaussian_blur", "jpeg", "white_noise", "downscale_upscale", "contrast_change", "color_quantization")
UNSEEN = ("motion_blur", "webp", "impulse_noise", "pixelate", "darken", "saturation_change")


def group_of(stem: str) -> str:
    """Near-duplicate photos share a group (stereo pairs, sequences, before/after)."""
    s = re.sub(r"^(opencv|skimage|sklearn|matplotlib)_", "", stem)
    s = re.sub(r"^(dnn_superres_|reg_)", "", s)
    s = re.sub(r"(_modified|_original|_in_scene|_left|_right|_defocus|_motion)$", "", s)
    s = "left_right" if s in ("left", "right") else s
    return re.sub(r"(\d+|_\d+|[LRAB])$", "", s) or s


def split_photos(folder: Path) -> tuple[list[Path], list[Path]]:
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png", ".jpeg"))
    groups = sorted({group_of(p.stem) for p in photos})
    held = set(groups[1::4])  # every 4th content group is never seen in pretraining
    return [p for p in photos if group_of(p.stem) not in held], [
        p for p in photos if group_of(p.stem) in held
    ]


def link_all(paths: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        dst = folder / p.name
        if not dst.exists():
            dst.symlink_to(p)


def per_type_srocc(run_dir: Path, manifest: Path) -> dict[str, float]:
    """Test SROCC within each distortion type (its levels plus the pristine of each content)."""
    from scipy.stats import spearmanr

    rows = {json.loads(x)["path"]: json.loads(x) for x in manifest.read_text().splitlines() if x.strip()}
    preds = [
        json.loads(x) for x in (run_dir / "predictions_test.jsonl").read_text().splitlines() if x.strip()
    ]
    by_type: dict[str, list[tuple[float, float]]] = {}
    pristine = [(p["pred"], p["mos"]) for p in preds if not rows[p["path"]].get("dist_type")]
    for p in preds:
        t = rows[p["path"]].get("dist_type")
        if t:
            by_type.setdefault(t, []).append((p["pred"], p["mos"]))
    out = {}
    for t, pairs in by_type.items():
        pairs = pairs + pristine
        out[t] = float(spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)
    return out


def _mean(values) -> float:
    vals = [v for v in values if v == v]  # a constant prediction gives NaN: left out
    return statistics.fmean(vals) if vals else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_pretrain"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="+", help="pretrained variants to run (default: all)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    from qualitas.training.config import load_config
    from qualitas.training.linear_probe import BackboneRef, run_probe
    from qualitas.training.pretrain import pretrain

    work = args.work
    train_photos, held = split_photos(MEDIA / "images")
    link_all(train_photos, work / "unlabelled" / "images")
    link_all([MEDIA / "videos" / c for c in CLIPS], work / "unlabelled" / "videos")
    link_all(held, work / "heldout")
    print(
        f"pretraining photos {len(train_photos)}, clips {len(CLIPS)}; held-out photos {len(held)}", flush=True
    )

    ladder = work / "ladder"
    if not (ladder / "images.jsonl").is_file():
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "qualitas", "data", "synth", "--images", str(work / "heldout"),
               "--out", str(ladder), "--levels", "3", "--image-max-side", "192", "--teacher", "ssim,psnr", "--no-progress",
               "--types", *SEEN, *UNSEEN]  # fmt: skip
        subprocess.run(cmd, check=True)
        print(f"ladder: {time.perf_counter() - t:.0f} s", flush=True)
    manifest = ladder / "images.jsonl"

    common = [
        "model.name=nr_iqa", "model.backbone=tf_efficientnet_lite0", "model.pool=stats",
        "data.num_workers=0", "data.batch_size=32", "trainer.accelerator=cpu",
        "trainer.progress_bar=false", f"trainer.max_epochs={args.epochs}",
        f"pretrain.source={work / 'unlabelled'}", f"pretrain.frames_dir={work / 'frames'}",
        "pretrain.frames_per_video=12", f"pretrain.crop={args.crop}", "pretrain.max_side=320",
        "scheduler.warmup_epochs=1", "optimizer.weight_decay=1e-4",
    ]  # fmt: skip
    variants = {
        "simclr (random init)": ["pretrain.method=simclr", "optimizer.lr=1e-3", "pretrain.temperature=0.2"],
        "contrique (random init)": ["pretrain.method=contrique", "optimizer.lr=1e-3"],
        "contrique (from ImageNet)": [
            "pretrain.method=contrique",
            "model.pretrained=true",
            "optimizer.lr=2e-4",
        ],
    }
    if args.variants:
        unknown = set(args.variants) - set(variants)
        if unknown:
            ap.error(f"unknown variants {sorted(unknown)}; choose from {sorted(variants)}")
        variants = {k: v for k, v in variants.items() if k in args.variants}
    seen_list = "[" + ",".join(SEEN) + "]"
    results: dict[str, dict] = {}
    refs = {
        "random init": BackboneRef("tf_efficientnet_lite0"),
        "ImageNet Lite0": BackboneRef("tf_efficientnet_lite0", pretrained=True),
    }
    for name, extra in variants.items():
        run = work / "runs" / re.sub(r"[^a-z]+", "_", name.lower()).strip("_")
        if not (run / "backbone.pt").is_file():
            cfg = load_config(None, common + extra + [f"pretrain.distortions={seen_list}"])
            res = pretrain(cfg, out=run)
            m = res.metrics
        else:
            m = json.loads((run / "metrics.json").read_text())
        results[name] = {
            "pretrain": {
                k: m[k] for k in ("loss_per_epoch", "seconds", "seconds_per_epoch", "data", "epochs")
            }
        }
        print(f"{name}: loss {m['loss_per_epoch'][0]:.3f} -> {m['loss_per_epoch'][-1]:.3f}, "
              f"{statistics.median(m['seconds_per_epoch']):.1f} s/epoch", flush=True)  # fmt: skip
        refs[name] = BackboneRef("tf_efficientnet_lite0", str(run / "backbone.pt"))
    for name, ref in refs.items():
        t = time.perf_counter()
        out = work / "probes" / re.sub(r"[^a-z]+", "_", name.lower()).strip("_")
        probe_o = [
            "data.num_workers=0",
            "trainer.progress_bar=false",
            "trainer.probe_alphas=[0.1,1,10,100,1000,10000]",
        ]
        res = run_probe(ref, str(manifest), probe_o, out=out)
        types = per_type_srocc(Path(res["run_dir"]), manifest)
        entry = results.setdefault(name, {})
        entry["probe"] = {
            "test_srocc": res["test"]["srocc"],
            "test_plcc": res["test"]["plcc"],
            "val_srocc": res["val"]["srocc"],
            "seen_types_srocc": _mean(types[t] for t in SEEN if t in types),
            "unseen_types_srocc": _mean(types[t] for t in UNSEEN if t in types),
            "per_type": types,
            "seconds": round(time.perf_counter() - t, 1),
            "test_items": int(res["test"]["n"]),
        }
        print(f"probe {name}: test SROCC {res['test']['srocc']:.3f}", flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print("\n| backbone | pretrain s/epoch | probe test SROCC | PLCC | seen types | unseen types |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        p, pt = r["probe"], r.get("pretrain")
        spe = f"{statistics.median(pt['seconds_per_epoch']):.0f}" if pt else "–"
        print(f"| {name} | {spe} | {p['test_srocc']:.3f} | {p['test_plcc']:.3f} | "
              f"{p['seen_types_srocc']:.3f} | {p['unseen_types_srocc']:.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

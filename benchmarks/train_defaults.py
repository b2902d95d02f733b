"""Build, train, evaluate, export and ship the default models (one command per model).

    .venv/bin/python benchmarks/train_defaults.py nr-image [--media /work/shared/media]
    .venv/bin/python benchmarks/train_defaults.py nr-video [--media /work/shared/media]

Steps (each skipped when its output exists; ``--retrain`` trains again):

1. ``qualitas data synth`` ladders from the photos/videos under ``--media`` into
   ``build/defaults/synth_{images,videos}`` (resumable); ``--extra-photos`` adds 40
   photographs from Debian wallpaper packages (``EXTRA_PHOTOS``) to the nr-image contents;
2. ``qualitas train configs/default_nr_{image,video}.yaml --out runs/defaults/<name>``
   (grouped split: whole contents held out for ``test``);
3. held-out figures vs the teacher, overall and per distortion family (``dist_type``),
   from ``predictions_test.jsonl`` -> ``runs/defaults/<name>/heldout.json``;
4. ``qualitas export RUN --format onnx --verify --name <name>``, copied with its card and
   the held-out figures into ``src/qualitas/weights/<name>/``.

``--bench`` adds the speed check through the shipped ONNX model: 1080p images/s and the
real-time factor of a 1080p30 clip at the card's default sampling.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PRISTINE_VIDEOS = ("Megamind.avi", "bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
"""The pristine sources among /work/shared/media/videos (the others are distorted copies)."""

EXTRA_PHOTOS: dict[str, tuple[str, ...]] = {
    # Debian wallpaper packages whose images are photographs (the abstract/vector ones are
    # left out: their statistics are not those of camera images). Licences: see each
    # package's /usr/share/doc/<package>/copyright.
    "lomiri-wallpapers-16.04": tuple(
        f"usr/share/backgrounds/{n}.jpg"
        for n in (
            "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
            "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
            "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich",
            "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
            "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
            "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
            "umang_by_Abhishek_Mudgal",
        )
    ),
    "lomiri-wallpapers-20.04": ("usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",),
    "mate-backgrounds": tuple(
        f"usr/share/backgrounds/mate/nature/{n}.jpg"
        for n in (
            "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
            "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower",
        )
    ),
    "plasma-workspace-wallpapers": tuple(
        f"usr/share/wallpapers/{n}/contents/images"  # a folder: its largest image is taken
        for n in (
            "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
            "Grey", "Kite", "OneStandsOut", "Path", "Volna", "summer_1am",
        )
    ),
}  # fmt: skip
"""Real photos from Debian's package registry, added to the nr-image training contents."""


def extra_photos(dest: Path) -> int:
    """``apt-get download`` the EXTRA_PHOTOS packages and link their photos into ``dest``.

    Returns the number of photos linked; 0 (with a note) where apt-get/dpkg-deb are missing
    or the download fails, so the build goes on with the shared media only.
    """
    debs = ROOT / "build/defaults/debs"
    debs.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        print("note: apt-get/dpkg-deb not found; training on the shared photos only", flush=True)
        return 0
    n = 0
    for pkg, members in EXTRA_PHOTOS.items():
        tree = debs / pkg
        if not tree.is_dir():
            if not list(debs.glob(f"{pkg}_*.deb")):
                rc = subprocess.run(["apt-get", "download", pkg], cwd=debs).returncode
                if rc != 0:
                    print(f"note: apt-get download {pkg} failed; skipped", flush=True)
                    continue
            deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        for member in members:
            src = tree / member
            if src.is_dir():
                files = [f for f in src.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png")]
                src = max(files, key=lambda f: f.stat().st_size) if files else src
            if not src.is_file():
                print(f"note: {pkg} has no {member}; skipped", flush=True)
                continue
            label = member.split("/")[-3] if member.endswith("/contents/images") else src.stem
            link = dest / f"debian_{label}{src.suffix.lower()}"
            if not link.exists():
                link.symlink_to(src)
            n += 1
    return n


def qualitas(*args: str, ok: tuple[int, ...] = (0,)) -> None:
    cmd = [PY, "-m", "qualitas", *args]
    print("$", " ".join(cmd[2:]), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    if rc not in ok:
        raise SystemExit(f"`qualitas {args[0]}` failed (exit status {rc})")


def synth(name: str, media: Path, *, extra: bool = False) -> Path:
    photos = media / "images"
    if extra:  # the shared photos + EXTRA_PHOTOS, linked into one folder
        photos = ROOT / "build/defaults/sources/images"
        photos.mkdir(parents=True, exist_ok=True)
        for f in sorted((media / "images").iterdir()):
            link = photos / f.name
            if f.is_file() and not link.exists():
                link.symlink_to(f)
        print(f"{extra_photos(photos)} photos from Debian packages", flush=True)
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
            "384",
            "--jobs",
            "1",
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
        "100" if extra else "60",
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


def heldout_figures(run: Path, manifest: Path) -> dict:
    """SROCC/PLCC/RMSE of the test split vs the teacher, overall and per ``dist_type``."""
    import numpy as np

    from qualitas.evaluation.correlation import evaluate

    family = {}
    for line in manifest.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            family[r["path"]] = r.get("dist_type", "unknown")
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


def bench(name: str) -> dict:
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
            t, c = time.perf_counter(), time.process_time()
            for _ in range(3):
                for p in paths:
                    model.score(p)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            n = 3 * len(paths)
            return {
                "images": n,
                "seconds": dt,
                "images_per_s": n / dt,
                "images_per_cpu_s": n / dc,
                "size": "1920x1080 JPEG, decode included",
            }
        import av

        clip = tmp / "clip1080p.mp4"
        big = np.asarray(photo.resize((2400, 1350), Image.BICUBIC))
        with av.open(str(clip), "w") as c:
            s = c.add_stream("libx264", rate=30)
            s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
            s.options = {"crf": "30", "preset": "ultrafast"}
            for i in range(300):  # 10 s, camera pan
                x = int(i * (big.shape[1] - 1920) / 299)
                frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(big[135 : 135 + 1080, x : x + 1920]), format="rgb24"
                )
                for pkt in s.encode(frame):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        model.score_files(str(clip))  # warm-up
        t, c = time.perf_counter(), time.process_time()
        model.score_files(str(clip))
        dt, dc = time.perf_counter() - t, time.process_time() - c
        return {
            "clip_seconds": 10.0,
            "seconds": dt,
            "realtime_factor": 10.0 / dt,
            "realtime_factor_per_cpu_s": 10.0 / dc,
            "size": "1920x1080 30 fps H.264, decode included",
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=["nr-image", "nr-video"])
    ap.add_argument(
        "--media", type=Path, default=Path("/work/shared/media"), help="folder with images/ and videos/"
    )
    ap.add_argument("--retrain", action="store_true", help="train again even if the run exists")
    ap.add_argument(
        "--extra-photos",
        action="store_true",
        help="add the 40 photographs of EXTRA_PHOTOS (Debian wallpaper packages, apt-get download): nr-image distorts them too, nr-video pans over 100 of the 105 photos instead of 60 of 65",
    )
    ap.add_argument("--no-ship", action="store_true", help="do not copy the export into src/qualitas/weights")
    ap.add_argument("--bench", action="store_true", help="only measure the speed of the shipped model")
    ap.add_argument("-o", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    args = ap.parse_args(argv)
    name = args.model
    if args.bench:
        print(json.dumps(bench(name), indent=1))
        return 0
    run = ROOT / "runs/defaults" / name
    t0 = time.perf_counter()
    manifest = synth(name, args.media, extra=args.extra_photos)
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

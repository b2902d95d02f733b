"""``make demo`` / ``python -m qualitas.demo --out demo-output``: the life of a quality model.

On real photos that ship with pip packages (scikit-image's ``skimage.data``, scikit-learn's
sample images when installed), and in a few minutes on a laptop CPU:

1. ``qualitas data synth``: a small labelled ladder (distortion types x levels, teacher
   MS-SSIM + PSNR against the pristine photo);
2. ``qualitas train``: a small no-reference model (whole photos held out) on the pretrained
   ImageNet EfficientNet-Lite0 — the shipped defaults' recipe, a ridge read-out of its frozen
   multi-stage statistics — and the same recipe from random initialisation, for comparison;
3. ``qualitas eval``: SROCC/PLCC on the held-out photos and the scatter plot;
4. ``qualitas export --format onnx --verify``;
5. a sample clip pair (a camera pan over a photo, near-lossless pristine, x264 at a high
   CRF distorted), scored with the shipped ``nr-video`` model (no reference) and with VMAF
   (against the pristine);
6. a summary table.

Every step runs the public command line (printed with ``$``) and is skipped when its
output already exists, so a re-run reuses what was built. ``--quick`` uses tiny sizes
(the test suite's smoke run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qualitas.errors import DependencyError, QualitasError
from qualitas.files import atomic_write_text

# Colour photos bundled with scikit-image (no download), and scikit-learn's two samples.
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "brick",
    "grass",
    "gravel",
    "camera",
    "moon",
    "coins",
)
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
MIN_SIDE = 176
"""MS-SSIM (part of the teacher) needs 176 px on the shorter side."""


@dataclass(frozen=True)
class DemoSize:
    """How big each step is (``full``: about 5 minutes on 2 CPU cores; ``quick``: seconds)."""

    photos: int
    max_side: int
    types: tuple[str, ...]
    levels: int
    clip_frames: int
    clip_hw: tuple[int, int]


FULL = DemoSize(
    photos=16,
    max_side=320,
    types=(
        "gaussian_blur",
        "jpeg",
        "white_noise",
        "webp",
        "downscale_upscale",
        "contrast_change",
        "color_quantization",
        "impulse_noise",
    ),
    levels=4,
    clip_frames=75,
    clip_hw=(360, 640),
)
QUICK = DemoSize(
    photos=4,
    max_side=272,
    types=("gaussian_blur", "jpeg"),
    levels=3,
    clip_frames=12,
    clip_hw=(180, 320),
)


def say(msg: str) -> None:
    print(msg, flush=True)


def step(title: str) -> None:
    say(f"\n== {title}")


def cli(*args: str) -> None:
    """Run ``qualitas ARGS`` in a child process (what a user would type)."""
    say("$ qualitas " + " ".join(args))
    proc = subprocess.run([sys.executable, "-m", "qualitas", *args])
    if proc.returncode != 0:
        raise SystemExit(f"demo: `qualitas {args[0]}` failed (exit status {proc.returncode})")


# ----------------------------------------------------------------------------- photos


def load_photos(limit: int, max_side: int = 0) -> dict[str, np.ndarray]:
    """Real photos from installed packages as uint8 RGB ``(H, W, 3)`` arrays, by name.

    Photos whose shorter side would drop below ``MIN_SIDE`` once the longer one is scaled
    to ``max_side`` (0: unscaled) are left out.
    """
    out: dict[str, np.ndarray] = {}
    try:
        import skimage.data as sk
    except ImportError:
        sk = None
    if sk is not None:
        for name in SKIMAGE_PHOTOS:
            try:
                img = np.asarray(getattr(sk, name)())
            except Exception:  # a data file this scikit-image build lacks (or would download)
                continue
            out[f"skimage_{name}"] = img
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        load_sample_image = None
    if load_sample_image is not None:
        for name in SKLEARN_PHOTOS:
            out[f"sklearn_{name.split('.')[0]}"] = np.asarray(load_sample_image(name))
    if not out:
        raise DependencyError("the demo needs scikit-image (pip install scikit-image) for its sample photos")
    photos: dict[str, np.ndarray] = {}
    for name, img in out.items():
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(1.0, float(img.max())))).round().astype(np.uint8)
        h, w = img.shape[:2]
        scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
        if min(h, w) * scale >= MIN_SIDE:
            photos[name] = img
    return dict(list(photos.items())[:limit])


def write_photos(folder: Path, size: DemoSize) -> int:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photos = load_photos(size.photos, size.max_side)
    for name, img in photos.items():
        path = folder / f"{name}.png"
        if not path.exists():
            Image.fromarray(img).save(path)
    return len(photos)


# ----------------------------------------------------------------------------- clip pair


def pan_frames(photo: np.ndarray, n: int, hw: tuple[int, int]) -> np.ndarray:
    """A left-to-right camera pan over ``photo``: ``(n, H, W, 3)`` uint8."""
    from PIL import Image

    h, w = hw
    img = Image.fromarray(photo)
    scale = max(1.3 * w / img.width, h / img.height)
    big = np.asarray(img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC))
    top = (big.shape[0] - h) // 2
    span = big.shape[1] - w
    xs = [round(span * (0.5 - 0.5 * np.cos(np.pi * i / max(1, n - 1)))) for i in range(n)]  # eased
    return np.stack([big[top : top + h, x : x + w] for x in xs])


def encode(frames: np.ndarray, path: Path, options: dict[str, str], fps: int = 25) -> None:
    import av

    tmp = path.with_name(path.name + ".part.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = options
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    tmp.replace(path)  # a complete file, or none: reruns never see half a clip


def make_clip_pair(folder: Path, size: DemoSize) -> tuple[Path, Path]:
    """Pristine (x264 CRF 4, near-lossless) and distorted (x264 CRF 40) versions of a pan."""
    folder.mkdir(parents=True, exist_ok=True)
    pristine, distorted = folder / "pristine.mp4", folder / "distorted.mp4"
    if pristine.exists() and distorted.exists():
        say(f"(reusing {pristine} and {distorted})")
        return pristine, distorted
    photos = load_photos(100)
    photo = photos.get("skimage_coffee", next(iter(photos.values())))
    frames = pan_frames(photo, size.clip_frames, size.clip_hw)
    encode(frames, pristine, {"crf": "4", "preset": "medium"})
    encode(frames, distorted, {"crf": "40", "preset": "veryfast"})
    say(
        f"made {pristine} and {distorted} ({size.clip_hw[1]}x{size.clip_hw[0]}, {size.clip_frames} frames, 25 fps)"
    )
    return pristine, distorted


# ----------------------------------------------------------------------------- steps


def train_config(out: Path, size: DemoSize, *, pretrained: bool = True) -> Path:
    """The demo's training config (written next to its outputs, independent of the repo).

    The shipped defaults' recipe (docs/default-models.md): the frozen EfficientNet-Lite0, the
    mean/std of each of its stages on native-resolution fragments, a ridge read-out fit in
    closed form (``trainer.method: probe``). ``pretrained=False``: the same network and recipe
    from random initialisation, to show what the ImageNet weights bring.
    """
    import yaml

    cfg = {
        "run": {"name": "demo_nr_image" if pretrained else "demo_nr_image_random", "seed": 0},
        "model": {
            "name": "nr_iqa",
            "backbone": "tf_efficientnet_lite0",
            "pretrained": pretrained,
            "freeze_backbone": True,
            "pool": "stats",
            "hidden": 0,
        },
        "data": {
            "manifest": str(out / "synth" / "images.jsonl"),
            "root": str(out / "synth"),
            "dataset": "image",
            "batch_size": 16,
            "num_workers": 0,
            "input_size": {"mode": "fragments", "grid": 2, "patch": 96},
            "split_ratios": {"train": 0.6, "val": 0.2, "test": 0.2},
            "mos_norm": "minmax",
            "score_range": [0, 100],
        },
        "trainer": {"method": "probe", "probe_views": 2, "accelerator": "cpu", "progress_bar": True},
    }
    path = out / ("demo_config.yaml" if pretrained else "demo_config_random.yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def read_scores(path: Path, metric: str) -> float | None:
    data = json.loads(path.read_text())
    res = data["results"][0]
    return None if res.get("error") else res["scores"].get(metric)


def nr_video_available() -> bool:
    from qualitas.runtime.defaults import weights_dir

    return (weights_dir() / "nr-video" / "model.json").is_file()


def _ladder(out: Path, size: DemoSize, summary: dict) -> None:
    """Step 1: photos from installed packages and their synthetic ladder."""
    step("1/6 photos and a synthetic ladder (qualitas data synth)")
    n = write_photos(out / "photos", size)
    say(f"{n} photos from installed packages -> {out / 'photos'}")
    if (out / "synth" / "images.jsonl").is_file():
        say(f"(reusing {out / 'synth'})")
    else:
        cli(
            "data",
            "synth",
            "--images",
            str(out / "photos"),
            "--out",
            str(out / "synth"),
            "--image-max-side",
            str(size.max_side),
            "--levels",
            str(size.levels),
            "--types",
            *size.types,
            "--jobs",
            "1",
            "--seed",
            "0",
        )
    rows = (out / "synth" / "images.jsonl").read_text().count("\n")
    summary["ladder"] = f"{n} photos x {len(size.types)} types x {size.levels} levels = {rows} images"


def _train(out: Path, size: DemoSize, summary: dict) -> Path:
    """Step 2: the demo model on the pretrained backbone, and the same from random init."""
    step("2/6 train a small no-reference model on the pretrained backbone (qualitas train)")
    run_dir = out / "run"
    if (run_dir / "metrics.json").is_file():
        say(f"(reusing {run_dir})")
    else:
        cli("train", str(train_config(out, size)), "--out", str(run_dir))
    random_dir = out / "run_random_init"
    if (random_dir / "metrics.json").is_file():
        say(f"(reusing {random_dir})")
    else:
        say("the same network and recipe from random initialisation, for comparison:")
        cli("train", str(train_config(out, size, pretrained=False)), "--out", str(random_dir))
    random_test = json.loads((random_dir / "metrics.json").read_text()).get("test", {})
    summary["srocc_random_init"] = random_test.get("srocc")
    return run_dir


def _evaluate(out: Path, run_dir: Path, summary: dict) -> None:
    """Step 3: held-out figures of the demo model."""
    step("3/6 evaluate on the held-out photos (qualitas eval)")
    results = out / "eval" / "results.json"
    if not results.is_file():
        results.parent.mkdir(parents=True, exist_ok=True)
        cli("eval", str(run_dir), "--split", "test", "--out", str(results))
    figs = json.loads(results.read_text())
    fig = figs["metrics"]
    summary["srocc"], summary["plcc"] = float(fig["srocc"]), float(fig["plcc"])
    say(
        f"held-out SROCC {summary['srocc']:.3f}, PLCC {summary['plcc']:.3f}; scatter plot {results.with_suffix('.png')}"
    )


def _export(out: Path, run_dir: Path, summary: dict) -> None:
    """Step 4: ONNX export with a parity check."""
    step("4/6 export to ONNX and verify parity (qualitas export)")
    export = out / "export"
    if not (export / "model.json").is_file():
        cli("export", str(run_dir), "--format", "onnx", "--out", str(export), "--verify")
    card = json.loads((export / "model.json").read_text())
    parity = card.get("export", {}).get("parity", {})
    summary["parity"] = parity.get("max_abs_diff", parity.get("max_abs"))


def _clip(out: Path, size: DemoSize, summary: dict) -> None:
    """Step 5: a sample clip pair, scored with nr-video and with VMAF."""
    step("5/6 a sample clip: nr-video (no reference) and VMAF (with the reference)")
    pristine, distorted = make_clip_pair(out / "clip", size)
    scores = out / "scores"
    scores.mkdir(exist_ok=True)
    if nr_video_available():
        for label, clip in (("pristine", pristine), ("distorted", distorted)):
            dest = scores / f"nr_video_{label}.json"
            if not dest.is_file():
                cli("score", str(clip), "--model", "nr-video", "--out", str(dest), "--quiet")
            summary[f"nr_video_{label}"] = read_scores(dest, "nr-video")
    else:
        say("(the nr-video default model is not installed in this checkout; skipping it)")
    dest = scores / "vmaf_distorted.json"
    if not dest.is_file():
        cli(
            "score",
            str(distorted),
            "--ref",
            str(pristine),
            "--metric",
            "vmaf,psnr",
            "--out",
            str(dest),
            "--quiet",
        )
    summary["vmaf_distorted"] = read_scores(dest, "vmaf")
    summary["psnr_distorted"] = read_scores(dest, "psnr")


def run(out: Path, size: DemoSize) -> dict:
    """Run (or resume) every step under ``out``; returns the summary figures."""
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    t_start = time.perf_counter()
    _ladder(out, size, summary)
    run_dir = _train(out, size, summary)
    _evaluate(out, run_dir, summary)
    _export(out, run_dir, summary)
    _clip(out, size, summary)
    step("6/6 summary")
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    say(format_summary(summary, out))
    return summary


def format_summary(s: dict, out: Path) -> str:
    def f(v: object, nd: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{nd}f}" if isinstance(v, float) else str(v)

    rows = [
        ("synthetic ladder", s["ladder"]),
        ("demo model, held-out SROCC / PLCC", f"{f(s['srocc'], 3)} / {f(s['plcc'], 3)}"),
        (
            "same model from random init, held-out SROCC",
            f"{f(s.get('srocc_random_init'), 3)} (gain of the ImageNet weights: "
            f"{f(s['srocc'] - s['srocc_random_init'] if s.get('srocc_random_init') is not None else None, 3)})",
        ),
        ("ONNX vs PyTorch max |diff|", "n/a" if s.get("parity") is None else f"{s['parity']:.1e}"),
        (
            "sample clip, nr-video: pristine / distorted",
            f"{f(s.get('nr_video_pristine'))} / {f(s.get('nr_video_distorted'))}",
        ),
        (
            "sample clip, VMAF / PSNR of distorted vs pristine",
            f"{f(s.get('vmaf_distorted'))} / {f(s.get('psnr_distorted'))} dB",
        ),
        ("wall time of this run", f"{s['seconds']} s"),
    ]
    width = max(len(a) for a, _ in rows)
    lines = [f"{a:<{width}}  {b}" for a, b in rows]
    lines.append(
        f"everything is under {out}/ (summary.json, eval/results.png, export/model.onnx, clip/, scores/)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qualitas.demo", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", type=Path, default=Path("demo-output"), help="output folder (default demo-output)"
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in well under a minute")
    args = ap.parse_args(argv)
    try:
        run(args.out, QUICK if args.quick else FULL)
    except QualitasError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

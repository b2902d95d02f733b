"""Which variant a metric name means: qualitas vs the tools users compare against, same pairs.

For real photos of the shared media (8-bit RGB) and distortions made here (JPEG quality 10
with Pillow, gaussian blur sigma 2 and 5, gaussian noise sigma 15 and 50, seeded), it scores
every pair with

* qualitas: ``psnr``, ``psnr_y``, ``ssim`` (ssim.m, automatic downsampling),
  ``ssim_nodownsample``, ``ssim`` on the yuv444p Y plane (what ``qualitas score`` reads from
  YUV video), ``ssim_nodownsample`` on the raw Y codes (libvmaf's input), ``ms_ssim``, ``fsim``, ``fsimc``, ``vif`` (vifvec.m), ``vifp`` (vifp_mscale.m);
* pyiqa (in its own venv, ``--pyiqa-python``; classical metrics, no weights downloaded):
  ``psnr``, ``psnry``, ``ssim``, ``ms_ssim``, ``fsim`` (its default, chromatic), ``fsim``
  chromatic=False, ``vif``;
* ffmpeg's ``ssim`` and ``psnr`` filters on the PNGs as given (ffmpeg picks planar RGB,
  gbrp: the "All"/"average" values combine R, G, B) and on yuv444p (BT.601 limited range,
  the Y values);
* libvmaf through the same ffmpeg: ``float_ssim`` (default and ``scale=1``), ``float_ms_ssim``
  on yuv444p;
* scikit-image ``structural_similarity`` on the MATLAB-gray image (0..255): its defaults
  (7x7 uniform window, sample covariance) and Wang's settings (gaussian sigma 1.5,
  population covariance, the settings its docs give to match Wang et al.).

MATLAB's own ``ssim`` (Image Processing Toolbox) is not run: there is no MATLAB here and
Octave's image package 2.14 has no ``ssim``.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_metric_conventions.py \\
        --pyiqa-python /tmp/cmpenv/bin/python [--json out.json]

Prints a summary of the differences and one markdown table per metric family (a row per pair).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.metrics import get_metric
from qualitas.metrics.ssim import ssim_gray255

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("QUALITAS_MEDIA", ROOT.parent / "shared" / "media"))
PHOTOS = ("opencv_messi5.jpg", "opencv_building.jpg", "opencv_aloeL.jpg")  # ssim.m factor 1, 2, 4


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    out = gaussian_filter(img.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect")
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _noise(img: np.ndarray, sigma: float) -> np.ndarray:
    out = img + np.random.default_rng(0).normal(0.0, sigma, img.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


DISTORTIONS = {
    "jpeg10": lambda im: _jpeg(im, 10),
    "blur2": lambda im: _blur(im, 2.0),
    "noise15": lambda im: _noise(im, 15.0),
    "blur5": lambda im: _blur(im, 5.0),
    "noise50": lambda im: _noise(im, 50.0),
}


def make_pairs(photos: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"photo/distortion": (dist, ref)}`` uint8 (H, W, 3), even sizes (for yuv420 tools)."""
    pairs = {}
    for name in photos:
        ref = np.asarray(Image.open(MEDIA / "images" / name).convert("RGB"))
        ref = np.ascontiguousarray(ref[: ref.shape[0] // 2 * 2, : ref.shape[1] // 2 * 2])
        for dname, fn in DISTORTIONS.items():
            pairs[f"{Path(name).stem}/{dname}"] = (fn(ref), ref)
    return pairs


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255


def qualitas_scores(
    dist: np.ndarray, ref: np.ndarray, y_dist: np.ndarray, y_ref: np.ndarray
) -> dict[str, float]:
    d, r = _t(dist), _t(ref)
    out = {
        name: float(get_metric(name)(d, r))
        for name in ("psnr", "psnr_y", "ssim", "ssim_nodownsample", "ms_ssim", "fsim", "fsimc", "vif", "vifp")
    }
    # The stored Y plane as `qualitas score` reads YUV video (limited range normalised).
    m = get_metric("ssim")
    luma = [
        torch.from_numpy(((y.astype(np.float32) - 16) / 219).clip(0, 1))[None, None] for y in (y_dist, y_ref)
    ]
    out["ssim_yplane"] = float(m.score_prepared(m.prepare_luma(luma[0]), m.prepare_luma(luma[1])))
    # The raw limited-range codes (16..235) with L = 255, as libvmaf's float_ssim reads them.
    raw = [torch.from_numpy(y.astype(np.float32))[None, None] for y in (y_dist, y_ref)]
    out["ssim_nodownsample_yraw"] = float(ssim_gray255(raw[0], raw[1], downsample=False))
    return out


def skimage_scores(dist: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    from skimage.metrics import structural_similarity

    gd, gr = (rgb_to_gray_matlab(_t(a).double())[0, 0].numpy() * 255 for a in (dist, ref))
    return {
        "skimage_default": float(structural_similarity(gd, gr, data_range=255)),
        "skimage_wang": float(
            structural_similarity(
                gd, gr, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
        ),
    }


def ffmpeg_exe() -> str:
    if os.environ.get("QUALITAS_FFMPEG"):
        return os.environ["QUALITAS_FFMPEG"]
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: {res.stderr.strip().splitlines()[-1:]}")
    return res.stderr


def ffmpeg_scores(
    ff: str, dist: np.ndarray, ref: np.ndarray, tmp: Path
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """ffmpeg ssim (PNG as given, yuv444p) and libvmaf features; also the yuv444p Y planes."""
    dp, rp = tmp / "dist.png", tmp / "ref.png"
    Image.fromarray(dist).save(dp)
    Image.fromarray(ref).save(rp)
    base = [ff, "-hide_banner", "-nostdin", "-i", str(dp), "-i", str(rp)]
    out: dict[str, float] = {}
    err = _run([*base, "-lavfi", "[0:v][1:v]ssim", "-f", "null", "-"])
    out["ffmpeg_ssim_png_all"] = float(re.search(r"All:([0-9.]+)", err).group(1))
    err = _run([*base, "-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
    out["ffmpeg_psnr_png_avg"] = float(re.search(r"average:([0-9.]+)", err).group(1))
    yuv = "[0:v]format=yuv444p[d];[1:v]format=yuv444p[r];[d][r]"
    err = _run([*base, "-lavfi", yuv + "ssim", "-f", "null", "-"])
    out["ffmpeg_ssim_yuv_y"] = float(re.search(r" Y:([0-9.]+)", err).group(1))
    err = _run([*base, "-lavfi", yuv + "psnr", "-f", "null", "-"])
    out["ffmpeg_psnr_yuv_y"] = float(re.search(r" y:([0-9.]+)", err).group(1))
    for key, feats in (
        ("libvmaf", "name=float_ssim|name=float_ms_ssim"),
        # The option separator escaped for the feature list and again for the filtergraph.
        ("libvmaf_scale1", r"name=float_ssim\\\:scale=1"),
    ):
        log = tmp / f"{key}.json"
        lavfi = yuv + f"libvmaf=feature={feats}:log_fmt=json:log_path={log}"
        try:
            _run([*base, "-lavfi", lavfi, "-f", "null", "-"])
        except RuntimeError:
            continue  # an older libvmaf without float_ssim's scale option
        metrics = json.loads(log.read_text())["frames"][0]["metrics"]
        if key == "libvmaf":
            out["libvmaf_float_ssim"] = metrics["float_ssim"]
            out["libvmaf_float_ms_ssim"] = metrics["float_ms_ssim"]
        else:
            out["libvmaf_float_ssim_scale1"] = metrics["float_ssim"]
    planes = []
    for p in (dp, rp):
        raw = subprocess.run(
            [
                ff,
                "-hide_banner",
                "-loglevel",
                "error",
                "-i",
                str(p),
                "-vf",
                "format=yuv444p",
                "-f",
                "rawvideo",
                "-",
            ],
            capture_output=True,
            check=True,
        ).stdout
        planes.append(np.frombuffer(raw, np.uint8)[: dist.shape[0] * dist.shape[1]].reshape(dist.shape[:2]))
    return out, planes[0], planes[1]


_PYIQA_WORKER = r"""
import json, sys
import numpy as np, torch, pyiqa
data = np.load(sys.argv[1])
names = {"pyiqa_psnr": ("psnr", {}), "pyiqa_psnry": ("psnry", {}), "pyiqa_ssim": ("ssim", {}), "pyiqa_ms_ssim": ("ms_ssim", {}), "pyiqa_fsim": ("fsim", {}),
         "pyiqa_fsim_gray": ("fsim", {"chromatic": False}), "pyiqa_vif": ("vif", {})}
metrics = {k: pyiqa.create_metric(n, device="cpu", **o) for k, (n, o) in names.items()}
out = {}
for i in range(int(data["n"])):
    d = torch.from_numpy(data[f"d{i}"]).permute(2, 0, 1)[None].float() / 255
    r = torch.from_numpy(data[f"r{i}"]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out[i] = {k: float(m(d, r).flatten()[0]) for k, m in metrics.items()}
print(json.dumps({"version": pyiqa.__version__, "scores": out}))
"""


def pyiqa_scores(
    python: str, pairs: list[tuple[np.ndarray, np.ndarray]], tmp: Path
) -> tuple[str, list[dict]]:
    arrays = {"n": np.array(len(pairs))}
    for i, (d, r) in enumerate(pairs):
        arrays[f"d{i}"], arrays[f"r{i}"] = d, r
    np.savez(tmp / "pairs.npz", **arrays)
    res = subprocess.run(
        [python, "-c", _PYIQA_WORKER, str(tmp / "pairs.npz")], capture_output=True, text=True, check=True
    )
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    return doc["version"], [doc["scores"][str(i)] for i in range(len(pairs))]


LABELS = {
    "psnr": "qualitas `psnr` (MSE over R, G, B)",
    "ffmpeg_psnr_png_avg": "ffmpeg `psnr` on the PNGs (gbrp, average)",
    "pyiqa_psnr": "pyiqa `psnr`",
    "psnr_y": "qualitas `psnr_y` (BT.601 studio-range Y of the RGB)",
    "ffmpeg_psnr_yuv_y": "ffmpeg `psnr` on yuv444p, y",
    "pyiqa_psnry": "pyiqa `psnry`",
    "ssim": "qualitas `ssim` (ssim.m: rgb2gray, downsampled by round(min/256))",
    "ssim_nodownsample": "qualitas `ssim_nodownsample` (ssim_index.m)",
    "ssim_yplane": "qualitas `ssim` on the yuv444p Y plane (`qualitas score` on YUV video)",
    "ssim_nodownsample_yraw": "qualitas `ssim_nodownsample` on the raw yuv444p Y codes (16..235)",
    "pyiqa_ssim": "pyiqa `ssim` (YIQ Y rounded, no downsampling)",
    "skimage_wang": "scikit-image, Wang's settings (gaussian 1.5, population cov.)",
    "skimage_default": "scikit-image defaults (7x7 uniform, sample cov.)",
    "ffmpeg_ssim_yuv_y": "ffmpeg `ssim` on yuv444p, Y (8x8 blocks, limited range)",
    "ffmpeg_ssim_png_all": "ffmpeg `ssim` on the PNGs (gbrp, All = mean of R, G, B)",
    "libvmaf_float_ssim": "libvmaf `float_ssim` (Y, scale auto)",
    "libvmaf_float_ssim_scale1": "libvmaf `float_ssim:scale=1` (Y, no downsampling)",
    "ms_ssim": "qualitas `ms_ssim` (msssim.m)",
    "pyiqa_ms_ssim": "pyiqa `ms_ssim`",
    "libvmaf_float_ms_ssim": "libvmaf `float_ms_ssim` (Y, 9/7 wavelet low-pass)",
    "fsim": "qualitas `fsim` (FeatureSIM.m FSIM)",
    "fsimc": "qualitas `fsimc` (FeatureSIM.m FSIMc)",
    "pyiqa_fsim": "pyiqa `fsim` (default chromatic=True)",
    "pyiqa_fsim_gray": "pyiqa `fsim` chromatic=False",
    "vif": "qualitas `vif` (vifvec.m, wavelet domain)",
    "vifp": "qualitas `vifp` (vifp_mscale.m, pixel domain)",
    "pyiqa_vif": "pyiqa `vif`",
}
# (other tool's value, qualitas value it is compared with): the summary gives other - qualitas.
COMPARE = [
    ("ffmpeg_psnr_png_avg", "psnr"),
    ("pyiqa_psnr", "psnr"),
    ("ffmpeg_psnr_yuv_y", "psnr_y"),
    ("pyiqa_psnry", "psnr_y"),
    ("ssim_yplane", "ssim"),
    ("pyiqa_ssim", "ssim"),
    ("pyiqa_ssim", "ssim_nodownsample"),
    ("skimage_wang", "ssim_nodownsample"),
    ("skimage_default", "ssim_nodownsample"),
    ("ffmpeg_ssim_yuv_y", "ssim_nodownsample"),
    ("ffmpeg_ssim_png_all", "ssim_nodownsample"),
    ("libvmaf_float_ssim", "ssim"),
    ("libvmaf_float_ssim_scale1", "ssim_nodownsample"),
    ("libvmaf_float_ssim_scale1", "ssim_nodownsample_yraw"),
    ("pyiqa_ms_ssim", "ms_ssim"),
    ("libvmaf_float_ms_ssim", "ms_ssim"),
    ("pyiqa_fsim", "fsim"),
    ("pyiqa_fsim", "fsimc"),
    ("pyiqa_fsim_gray", "fsim"),
    ("pyiqa_vif", "vif"),
    ("pyiqa_vif", "vifp"),
    ("vifp", "vif"),
]
FAMILIES = {
    "PSNR (dB)": ["psnr", "ffmpeg_psnr_png_avg", "pyiqa_psnr", "psnr_y", "ffmpeg_psnr_yuv_y", "pyiqa_psnry"],
    "SSIM": [
        "ssim", "ssim_yplane", "libvmaf_float_ssim", "ssim_nodownsample", "pyiqa_ssim", "skimage_wang",
        "libvmaf_float_ssim_scale1", "ssim_nodownsample_yraw", "skimage_default", "ffmpeg_ssim_yuv_y", "ffmpeg_ssim_png_all",
    ],
    "MS-SSIM": ["ms_ssim", "pyiqa_ms_ssim", "libvmaf_float_ms_ssim"],
    "FSIM": ["fsim", "pyiqa_fsim_gray", "fsimc", "pyiqa_fsim"],
    "VIF": ["vif", "pyiqa_vif", "vifp"],
}  # fmt: skip


def report(scores: dict[str, dict[str, float]], versions: dict[str, str]) -> str:
    """Markdown: a summary of differences, then one table per family (a row per pair)."""
    keys = list(scores)
    lines = ["versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    lines += ["| other tool | compared with | other - qualitas, min .. max over the pairs |", "|---|---|---|"]
    for other, ours in COMPARE:
        diffs = [scores[k][other] - scores[k][ours] for k in keys if other in scores[k]]
        if diffs:
            lines.append(f"| {LABELS[other]} | {LABELS[ours]} | {min(diffs):+.4f} .. {max(diffs):+.4f} |")
    for title, cols in FAMILIES.items():
        cols = [c for c in cols if any(c in scores[k] for k in keys)]
        lines += ["", f"{title}: " + "; ".join(f"`{c}` = {LABELS[c]}" for c in cols), ""]
        lines += ["| pair | " + " | ".join(f"`{c}`" for c in cols) + " |", "|---|" + "---:|" * len(cols)]
        for k in keys:
            cells = [f"{scores[k][c]:.4f}" if c in scores[k] else "-" for c in cols]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--photos", nargs="+", default=list(PHOTOS), help="file names under the shared media images/"
    )
    ap.add_argument("--pyiqa-python", help="python of a venv with pyiqa (omit to skip pyiqa)")
    ap.add_argument("--json", type=Path, help="also write all scores here")
    ap.add_argument("--from-json", type=Path, help="only print the report of a previous --json run")
    args = ap.parse_args(argv)
    if args.from_json:
        doc = json.loads(args.from_json.read_text())
        print(report(doc["scores"], doc["versions"]))
        return 0
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pairs = make_pairs(tuple(args.photos))
    keys = list(pairs)
    ff = ffmpeg_exe()
    scores: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for key in keys:
            dist, ref = pairs[key]
            row, yd, yr = ffmpeg_scores(ff, dist, ref, tmp)
            row.update(qualitas_scores(dist, ref, yd, yr))
            row.update(skimage_scores(dist, ref))
            scores[key] = row
            print(f"scored {key} {dist.shape[1]}x{dist.shape[0]}", file=sys.stderr)
        res = subprocess.run([ff, "-hide_banner", "-version"], capture_output=True, text=True)
        versions = {"ffmpeg": res.stdout.splitlines()[0]}
        if args.pyiqa_python:
            versions["pyiqa"], rows = pyiqa_scores(args.pyiqa_python, [pairs[k] for k in keys], tmp)
            for key, row in zip(keys, rows):
                scores[key].update(row)
    import skimage

    versions["scikit-image"] = skimage.__version__
    print(report(scores, versions))
    if args.json:
        args.json.write_text(json.dumps({"versions": versions, "scores": scores}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Test pairs for the SSIM/MS-SSIM calibration, and the script that made their reference values.

The pairs are built from images that ship with scikit-image by a fixed recipe (JPEG through
Pillow, gaussian blur through scipy, gaussian noise from a seeded numpy generator). Running
this file writes the pairs as PNG to a temporary folder, runs Zhou Wang's original MATLAB
code under GNU Octave on them, and writes ``ssim_reference.json`` beside this file:

    apt-get install -y octave octave-image
    python tests/metrics/reference_values/make_reference_values.py --matlab-dir DIR

``DIR`` holds the reference code (not part of this repository, see docs/metrics.md):
``ssim.m`` (SSIM Index with automatic downsampling, Version 1.0, Z. Wang 2009),
``msssim.m`` and its helper ``ssim_index_new.m`` (Wang, Simoncelli, Bovik 2003).
The tests import :func:`make_pair` and :data:`CASES` from here.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "ssim_reference.json"


@dataclass(frozen=True)
class Case:
    """One calibration pair: a scikit-image picture, an optional reflect-pad, a distortion."""

    name: str
    image: str  # a skimage.data function name
    distortion: str  # "jpeg" | "blur" | "noise"
    strength: float  # JPEG quality | blur sigma | noise sigma (0..255 scale)
    pad_to: tuple[int, int] | None = None  # reflect-pad to (H, W) to reach other downsampling factors


CASES: tuple[Case, ...] = (
    Case("camera_jpeg10", "camera", "jpeg", 10),
    Case("camera_blur2", "camera", "blur", 2.0),
    Case("camera_noise10", "camera", "noise", 10.0),
    Case("astronaut_jpeg20", "astronaut", "jpeg", 20),
    Case("astronaut_blur1", "astronaut", "blur", 1.0),
    Case("astronaut_noise5", "astronaut", "noise", 5.0),
    Case("chelsea_jpeg30", "chelsea", "jpeg", 30),  # 300x451: no downsampling, odd width
    Case("chelsea_noise15", "chelsea", "noise", 15.0),
    Case("coffee_blur1.5", "coffee", "blur", 1.5),  # 400x600: f = 2
    Case("astronaut700_jpeg50", "astronaut", "jpeg", 50, (700, 800)),  # f = 3
    Case("astronaut1080_noise8", "astronaut", "noise", 8.0, (1080, 1100)),  # f = 4, as 1080p
)


def reference_image(case: Case) -> np.ndarray:
    """The undistorted picture as uint8, (H, W) for gray or (H, W, 3)."""
    from skimage import data

    img = getattr(data, case.image)()
    if case.pad_to is not None:
        ph, pw = case.pad_to[0] - img.shape[0], case.pad_to[1] - img.shape[1]
        pad = [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] + [(0, 0)] * (img.ndim - 2)
        img = np.pad(img, pad, mode="reflect")
    return np.ascontiguousarray(img.astype(np.uint8))


def distort(img: np.ndarray, distortion: str, strength: float, seed: int = 0) -> np.ndarray:
    """Apply one distortion to a uint8 image; deterministic for a given seed."""
    if distortion == "jpeg":
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(strength))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(Image.fromarray(img).mode))
    if distortion == "blur":
        from scipy.ndimage import gaussian_filter

        sigma = (strength, strength) + (0,) * (img.ndim - 2)
        out = gaussian_filter(img.astype(np.float64), sigma=sigma, mode="reflect")
    elif distortion == "noise":
        rng = np.random.default_rng(seed)
        out = img.astype(np.float64) + rng.normal(0.0, strength, img.shape)
    else:
        raise ValueError(f"unknown distortion {distortion!r}")
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def make_pair(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(dist, ref) uint8 arrays for a calibration case."""
    ref = reference_image(case)
    return distort(ref, case.distortion, case.strength), ref


def digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


OCTAVE_SCRIPT = r"""
pkg load image;
addpath(argv(){1});
pairs = argv()(2:end);
for i = 1:2:numel(pairs)
  A = imread(pairs{i});  % dist
  B = imread(pairs{i+1});  % ref
  if size(A, 3) == 3
    a8 = rgb2gray(A); b8 = rgb2gray(B);
    ad = rgb2gray(double(A)); bd = rgb2gray(double(B));
  else
    a8 = A; b8 = B; ad = double(A); bd = double(B);
  end
  printf("%.12f %.12f %.12f %.12f\n", ssim(ad, bd), msssim(ad, bd), ssim(a8, b8), msssim(a8, b8));
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matlab-dir", required=True, help="folder with ssim.m, msssim.m, ssim_index_new.m")
    parser.add_argument("--octave", default="octave")
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        files: list[str] = []
        digests = {}
        for case in CASES:
            dist, ref = make_pair(case)
            for tag, arr in (("dist", dist), ("ref", ref)):
                path = Path(tmp) / f"{case.name}_{tag}.png"
                Image.fromarray(arr).save(path)
                files.append(str(path))
            digests[case.name] = {"dist": digest(dist), "ref": digest(ref), "shape": list(ref.shape)}
        script = Path(tmp) / "run_reference.m"
        script.write_text(OCTAVE_SCRIPT)
        version = subprocess.run([args.octave, "--version"], capture_output=True, text=True, check=True)
        proc = subprocess.run(
            [args.octave, "--no-gui", "--quiet", str(script), str(Path(args.matlab_dir).resolve()), *files],
            capture_output=True,
            text=True,
            check=True,
        )
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    if len(rows) != len(CASES):
        sys.exit(f"octave printed {len(rows)} rows for {len(CASES)} cases:\n{proc.stdout}\n{proc.stderr}")
    values = {}
    for case, row in zip(CASES, rows):
        ssim_d, msssim_d, ssim_u8, msssim_u8 = (float(v) for v in row)
        values[case.name] = {
            "recipe": {
                "image": f"skimage.data.{case.image}()",
                "pad_to": case.pad_to,
                "distortion": case.distortion,
                "strength": case.strength,
            },
            "sha256_16": digests[case.name],
            "ssim": ssim_d,
            "ms_ssim": msssim_d,
            "ssim_uint8_gray": ssim_u8,
            "ms_ssim_uint8_gray": msssim_u8,
        }
    doc = {
        "produced_by": "tests/metrics/reference_values/make_reference_values.py",
        "octave": version.stdout.splitlines()[0],
        "reference_code": {
            "ssim": "ssim.m, 'SSIM Index with automatic downsampling, Version 1.0', (c) 2009 Zhou Wang; "
            "copy read from github.com/obartra/ssim assets/ssim/ssim.m @ b8a5aaec",
            "ms_ssim": "msssim.m + ssim_index_new.m (Wang, Simoncelli, Bovik 2003), default arguments; "
            "copy read from github.com/obartra/ssim assets/ms-ssim @ 29da280e / e9886b37",
        },
        "inputs": "ssim/ms_ssim: rgb2gray(double(rgb)) on 0..255 (no rounding), as qualitas; "
        "*_uint8_gray: rgb2gray(uint8 rgb), MATLAB's usual rounded grayscale. Gray images used as is.",
        "cases": values,
    }
    OUTPUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()

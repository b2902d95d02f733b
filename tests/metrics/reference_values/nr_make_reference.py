"""Produce ``nr_reference_values.json``: NIQE, BRISQUE and PIQE scores of the official
MATLAB code (run in GNU Octave) on fixed test images, plus MATLAB-compatible ``imresize``
outputs (Octave image package) for the imresize tests.

The test images are built here, deterministically, from images that scikit-image ships
(``skimage.data``); tests/metrics/test_nr_reference.py imports :func:`make_images` from this
file so the tests score exactly the images the reference numbers were computed on. Each
image is 8-bit RGB (what the MATLAB code reads with ``imread``); its SHA-256 is recorded.

The MATLAB sources are NOT part of qualitas. To regenerate, put them in one folder::

    apt-get install -y octave octave-image libsvm-tools
    .venv/bin/python tests/metrics/reference_values/nr_make_reference.py --refs /path/to/refs

where the folder holds:

* ``niqe/``: ``computequality.m``, ``computefeature.m``, ``computemean.m``,
  ``estimateaggdparam.m`` of the LIVE NIQE release (Mittal et al. 2013). The pristine
  model is read from qualitas' ``niqe_pris_params.npz`` (converted from the release's
  ``modelparameters.mat``) and handed to ``computequality(im, 96, 96, 0, 0, mu, cov)``.
* ``brisque/``: ``brisque_feature.m``, ``estimateggdparam.m``, ``estimateaggdparam.m``
  and ``allmodel`` of the LIVE BRISQUE release; ``allrange`` is written from qualitas'
  ``brisque_live_svr.npz``. Scored exactly as the release's ``brisquescore.m`` does:
  ``rgb2gray`` of the uint8 image, features printed with ``%f``, then libsvm's
  ``svm-scale -r allrange`` and ``svm-predict -b 1 ... allmodel`` (Debian ``libsvm-tools``).
* ``piqe/``: ``piqe.m`` (MATLAB Image Processing Toolbox, Venkatanath et al. 2015).
* ``shims/``: stand-ins for MATLAB functions Octave lacks, with MATLAB's semantics:
  ``nanmean`` (per column), ``nancov`` (complete rows), ``blkproc`` (zero border) and
  ``imgaussfilt(I, s, 'FilterSize', n, 'Padding', p)`` = ``imfilter(I, fspecial('gaussian',
  n, s), p)``.

MATLAB's own ``imresize`` is replaced by Octave's (image package 2.14), which implements the
same antialiased kernel; it equals MATLAB's for shrink factors 1/k (the taps then sum to 1;
Octave does not renormalise them otherwise) and for enlargements, which is what NIQE and
BRISQUE use (0.5) and what the imresize tests compare against.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("nr_reference_values.json")
ROOT = Path(__file__).resolve().parents[3]

# (name, base image, distortion, strength). Blur: gaussian sigma in pixels; noise: additive
# gaussian with std in 8-bit levels, seed fixed per image.
RECIPES: list[tuple[str, str, str, float]] = [
    ("camera", "camera", "none", 0.0),
    ("astronaut", "astronaut", "none", 0.0),
    ("chelsea", "chelsea", "none", 0.0),
    ("coffee", "coffee", "none", 0.0),
    ("camera_blur1", "camera", "blur", 1.0),
    ("camera_blur2", "camera", "blur", 2.0),
    ("camera_noise10", "camera", "noise", 10.0),
    ("astronaut_blur1", "astronaut", "blur", 1.0),
    ("astronaut_blur3", "astronaut", "blur", 3.0),
    ("astronaut_noise5", "astronaut", "noise", 5.0),
    ("astronaut_noise20", "astronaut", "noise", 20.0),
    ("coffee_noise10", "coffee", "noise", 10.0),
]

# imresize cases: a fixed 7x9 matrix, resized by scale or to a size.
IMRESIZE_INPUT_SHAPE = (7, 9)
IMRESIZE_CASES: list[dict] = [
    {"scale": 0.5},
    {"scale": 0.25},
    {"size": [10, 13]},
    {"scale": 2.0},
]
# Shrinking by a factor other than 1/k is left out: Octave's imresize does not renormalise
# the antialiased taps to sum 1 as MATLAB's contributions() does (they sum to exactly 1
# only for factors 1/k), so there it is not a MATLAB reference.


def imresize_input() -> np.ndarray:
    """Fixed (7, 9) float64 matrix with structure at every frequency."""
    i = np.arange(np.prod(IMRESIZE_INPUT_SHAPE), dtype=np.float64)
    return ((i * 37) % 101).reshape(IMRESIZE_INPUT_SHAPE)


def _base(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def make_images() -> dict[str, np.ndarray]:
    """name -> uint8 (H, W, 3) test image, from :data:`RECIPES`."""
    from scipy.ndimage import gaussian_filter

    out = {}
    for k, (name, base, kind, strength) in enumerate(RECIPES):
        img = _base(base).astype(np.float64)
        if kind == "blur":
            img = np.stack([gaussian_filter(img[..., c], strength, mode="reflect") for c in range(3)], -1)
        elif kind == "noise":
            img = img + np.random.default_rng(1000 + k).normal(0.0, strength, img.shape)
        out[name] = np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)
    return out


def digest(img: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()


_OCTAVE_DRIVER = r"""
pkg load image;
warning('off', 'all');
refs = '{refs}';
work = '{work}';
names = strsplit(fileread(fullfile(work, 'names.txt')));
names = names(~cellfun(@isempty, names));
load(fullfile(work, 'niqe_params.mat'));
fid = fopen(fullfile(work, 'scores.txt'), 'w');
for n = 1:numel(names)
  im = imread(fullfile(work, [names{{n}} '.png']));
  % NIQE
  addpath(fullfile(refs, 'shims')); addpath(fullfile(refs, 'niqe'));
  q_niqe = computequality(im, 96, 96, 0, 0, mu_prisparam, cov_prisparam);
  rmpath(fullfile(refs, 'niqe'));
  % BRISQUE, as brisquescore.m
  addpath(fullfile(refs, 'brisque'));
  imdist = double(rgb2gray(uint8(im)));
  feat = brisque_feature(imdist);
  rmpath(fullfile(refs, 'brisque'));
  tf = fopen(fullfile(work, 'test_ind'), 'w');
  fprintf(tf, '1 ');
  for kk = 1:size(feat, 2)
    fprintf(tf, '%d:%f ', kk, feat(1, kk));
  end
  fprintf(tf, '\n');
  fclose(tf);
  system(['svm-scale -r ' fullfile(work, 'allrange') ' ' fullfile(work, 'test_ind') ' > ' fullfile(work, 'test_ind_scaled')]);
  system(['svm-predict -b 1 ' fullfile(work, 'test_ind_scaled') ' ' fullfile(refs, 'brisque', 'allmodel') ' ' fullfile(work, 'output') ' > ' fullfile(work, 'dump')]);
  q_brisque = load(fullfile(work, 'output'));
  % PIQE
  addpath(fullfile(refs, 'piqe'));
  q_piqe = piqe(im);
  rmpath(fullfile(refs, 'piqe'));
  fprintf(fid, '%s %.17g %.17g %.17g\n', names{{n}}, q_niqe, q_brisque, q_piqe);
end
fclose(fid);
A = dlmread(fullfile(work, 'imresize_in.txt'));
rf = fopen(fullfile(work, 'imresize_out.txt'), 'w');
cases = {cases};
for c = 1:numel(cases)
  B = imresize(A, cases{{c}}, 'bicubic');
  fprintf(rf, '%d %d', size(B, 1), size(B, 2));
  fprintf(rf, ' %.17g', B');
  fprintf(rf, '\n');
end
fclose(rf);
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refs", type=Path, required=True, help="folder with the MATLAB sources")
    args = parser.parse_args()
    refs = args.refs.resolve()
    for tool in ("octave", "svm-scale", "svm-predict"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install -y octave octave-image libsvm-tools)")

    import scipy.io
    from PIL import Image

    sys.path.insert(0, str(ROOT / "src"))
    from qualitas.metrics.brisque import svr_model
    from qualitas.metrics.niqe import pristine_params

    images = make_images()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, img in images.items():
            Image.fromarray(img).save(work / f"{name}.png")
        (work / "names.txt").write_text("\n".join(images) + "\n")
        mu, cov = pristine_params()
        scipy.io.savemat(work / "niqe_params.mat", {"mu_prisparam": mu[None, :], "cov_prisparam": cov})
        model = svr_model()
        lines = ["x", f"{float(model.scale_lower)!r} {float(model.scale_upper)!r}"]
        lines += [
            f"{i + 1} {float(lo)!r} {float(hi)!r}"
            for i, (lo, hi) in enumerate(zip(model.feature_min, model.feature_max))
        ]
        (work / "allrange").write_text("\n".join(lines) + "\n")
        np.savetxt(work / "imresize_in.txt", imresize_input(), delimiter=",", fmt="%.17g")
        cases = (
            "{"
            + ", ".join(
                f"{c['scale']!r}" if "scale" in c else f"[{c['size'][0]} {c['size'][1]}]"
                for c in IMRESIZE_CASES
            )
            + "}"
        )
        script = _OCTAVE_DRIVER.format(refs=refs, work=work, cases=cases)
        (work / "driver.m").write_text(script)
        subprocess.run(["octave", "--no-gui", "--quiet", str(work / "driver.m")], check=True)
        scores = {}
        for line in (work / "scores.txt").read_text().splitlines():
            name, q_niqe, q_brisque, q_piqe = line.split()
            scores[name] = {"niqe": float(q_niqe), "brisque": float(q_brisque), "piqe": float(q_piqe)}
        resized = []
        for case, line in zip(IMRESIZE_CASES, (work / "imresize_out.txt").read_text().splitlines()):
            vals = [float(v) for v in line.split()]
            h, w = int(vals[0]), int(vals[1])
            resized.append({**case, "output": np.array(vals[2:]).reshape(h, w).tolist()})
        octave_version = subprocess.run(
            ["octave", "--no-gui", "--quiet", "--eval", "disp(version())"], capture_output=True, text=True
        ).stdout.strip()

    result = {
        "recipe": (
            "tests/metrics/reference_values/nr_make_reference.py: skimage.data images (camera "
            "replicated to RGB), gaussian blur (scipy.ndimage, sigma px, reflect) or additive "
            "gaussian noise (numpy default_rng(1000 + index), std in 8-bit levels), rounded to uint8"
        ),
        "command": "python tests/metrics/reference_values/nr_make_reference.py --refs /path/to/refs",
        "implementations": {
            "niqe": "LIVE NIQE release computequality(im,96,96,0,0,mu_prisparam,cov_prisparam), Octave",
            "brisque": "LIVE BRISQUE release brisque_feature.m + brisquescore.m flow with libsvm svm-scale/svm-predict",
            "piqe": "MATLAB IPT piqe.m (2018) algorithm, Octave with an imgaussfilt shim",
        },
        "octave_version": octave_version,
        "tolerance_relative": {"niqe": 0.02, "brisque": 0.02, "piqe": 0.01},
        "images": {name: {"sha256": digest(images[name]), **scores[name]} for name in images},
        "imresize": {"input_shape": list(IMRESIZE_INPUT_SHAPE), "cases": resized},
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")
    for name, s in scores.items():
        print(f"{name:20s} niqe {s['niqe']:9.4f}  brisque {s['brisque']:9.4f}  piqe {s['piqe']:9.4f}")


if __name__ == "__main__":
    main()

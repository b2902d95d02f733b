"""Produce ``fr_reference_values.json``: scores of the official MATLAB releases of the
full-reference metrics (run in GNU Octave) on fixed test pairs.

The test pairs are built here, deterministically, from images that scikit-image ships
(``skimage.data``); tests/metrics/test_fr_reference.py imports :func:`make_pairs` from this
file so the tests score exactly the pairs the reference numbers were computed on.

The MATLAB sources are NOT part of qualitas (their licences forbid redistribution or are
research-only). To regenerate, put them in one folder and run::

    apt-get install -y octave octave-image octave-signal liboctave-dev  # mkoctfile
    .venv/bin/python tests/metrics/reference_values/fr_make_reference.py --refs /path/to/matlab_refs \
        [--metrics vif vifp]                   # only these metrics (merged into the existing file)
        [--pyiqa /tmp/pyiqa-venv/bin/python]   # optional cross-check, stored under "pyiqa_crosscheck"

where the folder holds (public mirrors of the authors' releases):

* ``vifvec.m`` + ``vifsub_est_M.m`` + ``refparams_vecgsm.m`` + ``ind2wtree.m``  LIVE release
  2006, Sheikh & Bovik (wavelet-domain VIF; public copy: github.com/sattarab/image-quality-tools,
  ``metrix_mux/metrix/vif/vifvec_release``); it needs ``buildSpyr``/``corrDn``/``sp5Filters``
  of ``matlabPyrTools`` in ``pyrtools/`` (the .m fallbacks; the compiled ``corrDn`` MEX gives
  the same values to 1e-15, checked on one pair)
* ``vifp_mscale.m``        LIVE, Sheikh & Bovik 2005 (pixel-domain multiscale VIF, ``vifp``)
* ``GMSD.m``               Xue, Zhang, Mou, Bovik 2013
* ``FeatureSIM.m``         Zhang, Zhang, Mou, Zhang 2011 (with phasecong2 / lowpassfilter)
* ``VSI.m``                Zhang, Shen, Li 2014 (with SDSP, RGB2Lab, logGabor)
* ``MAD_index.m`` + ``ical_std.c`` + ``ical_stat.c``  Larson & Chandler, release 2011-10-07
  (the two MEX files are compiled with ``mkoctfile --mex``)
* ``NLP_dist.m``           Laparra, Ballé, Berardino, Simoncelli 2016
* ``cwssim_index.m``       Sampat, Wang et al. 2009, plus Simoncelli's ``matlabPyrTools``
  in a ``pyrtools/`` sub-folder (MEX binaries removed, so the .m fallbacks run)
* ``deltaE2000.m``         G. Sharma, Wu, Dalal 2005; image colour conversion by the image
  package's ``rgb2lab`` (sRGB, D65, as MATLAB's).

Inputs given to the MATLAB code (what qualitas' metrics do to their (B,3,H,W) input):
gray metrics get MATLAB ``rgb2gray`` weights applied to the float image without rounding,
on the 0..255 scale (NLPD: 0..1); FSIM/FSIMc and VSI get the RGB image on 0..255 as doubles;
CIEDE2000 gets RGB in 0..1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("fr_reference_values.json")

# MATLAB rgb2gray weights (first row of inv of the NTSC YIQ->RGB matrix).
_GRAY = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))[0]


def _image(name: str) -> np.ndarray:
    """uint8 (H, W, 3) image from skimage.data (camera is replicated to 3 channels)."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(img.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect", truncate=4.0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _noise(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img.astype(np.float64) + rng.normal(0.0, sigma, size=img.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _dct_quantise(img: np.ndarray, step: float) -> np.ndarray:
    """JPEG-like blocking: 8x8 DCT of each channel, uniform quantisation, inverse DCT.

    Used instead of a real JPEG encoder so that the pair does not depend on the libjpeg
    version that Pillow was built with.
    """
    from scipy.fft import dctn, idctn

    h, w = img.shape[0] // 8 * 8, img.shape[1] // 8 * 8
    x = img.astype(np.float64).copy()
    blocks = x[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).transpose(0, 2, 4, 1, 3) - 128.0
    coef = dctn(blocks, axes=(-2, -1), norm="ortho")
    coef = np.round(coef / step) * step
    rec = idctn(coef, axes=(-2, -1), norm="ortho") + 128.0
    x[:h, :w] = rec.transpose(0, 3, 1, 4, 2).reshape(h, w, 3)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


IMAGES = ("camera", "astronaut", "chelsea", "coffee")
DISTORTIONS = {
    "blur1.5": lambda im: _blur(im, 1.5),
    "noise10": lambda im: _noise(im, 10.0),
    "dct40": lambda im: _dct_quantise(im, 40.0),
}


def make_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"image/distortion": (dist, ref)}`` as uint8 (H, W, 3) arrays."""
    pairs = {}
    for name in IMAGES:
        ref = _image(name)
        for dname, fn in DISTORTIONS.items():
            pairs[f"{name}/{dname}"] = (fn(ref), ref)
    return pairs


OCTAVE_DRIVER = r"""
pkg load image
addpath('{refs}'); addpath('{refs}/pyrtools', '-end');
files = dir('{data}/*.mat');
fid = fopen('{data}/out.txt', 'w');
for i = 1:numel(files)
  s = load(fullfile('{data}', files(i).name));
  name = files(i).name(1:end-4);
  r = {{}};
{lines}
  for k = 1:numel(r)
    fprintf(fid, '%s %s\n', name, r{{k}});
  end
end
fclose(fid);
"""

# Octave lines per metric (inside the driver's loop; ``r`` collects "name value" strings).
METRIC_LINES = {
    "vif": "  r{end+1} = sprintf('vif %.12g', vifvec(s.ref_gray, s.dist_gray));",
    "vifp": "  r{end+1} = sprintf('vifp %.12g', vifp_mscale(s.ref_gray, s.dist_gray));",
    "gmsd": "  r{end+1} = sprintf('gmsd %.12g', GMSD(s.ref_gray, s.dist_gray));",
    "fsim": "  [f, fc] = FeatureSIM(s.ref_rgb, s.dist_rgb);\n"
    "  r{end+1} = sprintf('fsim %.12g', f);\n  r{end+1} = sprintf('fsimc %.12g', fc);",
    "vsi": "  r{end+1} = sprintf('vsi %.12g', VSI(s.ref_rgb, s.dist_rgb));",
    "mad": "  [mad, idx] = MAD_index(s.ref_gray, s.dist_gray);\n  r{end+1} = sprintf('mad %.12g', mad);",
    "nlpd": "  r{end+1} = sprintf('nlpd %.12g', NLP_dist(s.ref_gray / 255, s.dist_gray / 255));",
    "cw_ssim": "  r{end+1} = sprintf('cw_ssim %.12g', cwssim_index(s.ref_gray, s.dist_gray, 4, 8, 0, 0));",
    "ciede2000": "  lr = rgb2lab(s.ref_rgb / 255); ld = rgb2lab(s.dist_rgb / 255);\n"
    "  de = deltaE2000(reshape(lr, [], 3), reshape(ld, [], 3));\n"
    "  r{end+1} = sprintf('ciede2000 %.12g', mean(de));",
}


def run_octave(refs: Path, metrics: tuple[str, ...] = tuple(METRIC_LINES)) -> dict[str, dict[str, float]]:
    from scipy.io import savemat

    pairs = make_pairs()
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        build = tmpd / "mex"
        build.mkdir()
        if "vif" in metrics and not (refs / "vifsub_est_m.m").exists():
            # vifvec.m calls vifsub_est_m, the release's file is vifsub_est_M.m: on a
            # case-sensitive file system a one-line forwarder stands in for MATLAB on Windows.
            (build / "vifsub_est_m.m").write_text(
                "function [g, v] = vifsub_est_m(varargin)\n[g, v] = vifsub_est_M(varargin{:});\nend\n"
            )
        for src in ("ical_std.c", "ical_stat.c") if "mad" in metrics else ():
            code = (refs / src).read_text()
            # ical_std.c frees its scratch buffer by passing the double* to mxDestroyArray,
            # which MATLAB tolerates and Octave does not (segfault); free the mxArray instead.
            code = code.replace(
                "TMP = mxGetPr( mxCreateDoubleMatrix(colLen, rowLen, mxREAL) );",
                "mxArray *tmpArr = mxCreateDoubleMatrix(colLen, rowLen, mxREAL); TMP = mxGetPr(tmpArr);",
            ).replace("mxDestroyArray(TMP);", "mxDestroyArray(tmpArr);")
            (build / src).write_text(code)
            subprocess.run(
                ["mkoctfile", "--mex", str(build / src), "-o", str(build / Path(src).stem)], check=True
            )
        # Octave orders complex numbers by modulus where MATLAB's relational operators use the
        # real part only. MAD_index takes the log of block means that the CSF filtering can
        # make negative; those entries are then set to -inf and never selected in MATLAB, but
        # compare as +inf in Octave. real() around the two logs restores MATLAB's behaviour.
        if "mad" in metrics:
            mad = (refs / "MAD_index.m").read_text()
            for var, arg in (("Ci_ref", "std_1./m1_1"), ("Ci_dst", "std_2./m1_1")):
                before = f"{var} = log({arg});"
                if before not in mad:
                    raise SystemExit(f"MAD_index.m: expected line '{before}' not found")
                mad = mad.replace(before, f"{var} = real(log({arg}));")
            (build / "MAD_index.m").write_text(mad)
        keys = {}
        for i, (key, (dist, ref)) in enumerate(pairs.items()):
            stem = f"p{i:02d}"
            keys[stem] = key
            d, r = dist.astype(np.float64), ref.astype(np.float64)
            savemat(
                tmpd / f"{stem}.mat",
                {"dist_rgb": d, "ref_rgb": r, "dist_gray": d @ _GRAY, "ref_gray": r @ _GRAY},
            )
        lines = "\n".join(METRIC_LINES[m] for m in metrics).replace("{", "{{").replace("}", "}}")
        driver = OCTAVE_DRIVER.replace("{lines}", lines).format(refs=refs, data=tmpd)
        # build/ (compiled MEX, patched MAD_index.m, the vifvec forwarder) goes first on the path.
        (tmpd / "driver.m").write_text(
            driver.replace("files = dir(", f"addpath('{build}');\nfiles = dir(", 1)
        )
        subprocess.run(["octave", "--no-gui", "--quiet", str(tmpd / "driver.m")], check=True)
        values: dict[str, dict[str, float]] = {}
        for line in (tmpd / "out.txt").read_text().splitlines():
            stem, metric, val = line.split()
            values.setdefault(keys[stem], {})[metric] = float(val)
    return values


PYIQA_SNIPPET = r"""
import importlib.util, json, sys
import numpy as np, torch, pyiqa
spec = importlib.util.spec_from_file_location("recipe", sys.argv[1])
recipe = importlib.util.module_from_spec(spec); spec.loader.exec_module(recipe)
names = {"vif": ("vif", {}), "gmsd": ("gmsd", {}), "fsim": ("fsim", {"chromatic": False}),
         "fsimc": ("fsim", {}), "vsi": ("vsi", {}), "mad": ("mad", {}), "nlpd": ("nlpd", {}),
         "cw_ssim": ("cw_ssim", {})}
out = {}
for key, (dist, ref) in recipe.make_pairs().items():
    d = torch.from_numpy(dist).permute(2, 0, 1)[None].float() / 255
    r = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255
    for ours, (name, opts) in names.items():
        with torch.no_grad():
            out.setdefault(key, {})[ours] = float(pyiqa.create_metric(name, **opts)(d, r).flatten()[0])
print(json.dumps(out))
"""


def run_pyiqa(python: Path) -> dict[str, dict[str, float]]:
    """The same pairs through pyiqa (a cross-check, not a reference), in its own venv."""
    res = subprocess.run(
        [str(python), "-c", PYIQA_SNIPPET, str(Path(__file__).resolve())],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refs", type=Path, help="folder with the MATLAB reference sources")
    ap.add_argument(
        "--metrics",
        nargs="+",
        choices=sorted(METRIC_LINES),
        help="regenerate only these metrics, keeping the other values of the existing file",
    )
    ap.add_argument("--pyiqa", type=Path, help="python of a venv with pyiqa: add its scores as a cross-check")
    args = ap.parse_args(argv)
    if args.refs is None:
        # Only refresh the pyiqa cross-check of an existing file.
        doc = json.loads(OUT.read_text())
        if args.pyiqa is None:
            ap.error("give --refs and/or --pyiqa")
        doc["pyiqa_crosscheck"] = run_pyiqa(args.pyiqa)
        OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"wrote {OUT}")
        return 0
    metrics = tuple(args.metrics or METRIC_LINES)
    values = run_octave(args.refs.resolve(), metrics)
    if args.metrics:
        old = json.loads(OUT.read_text())["values"]
        for key, row in old.items():
            values[key] = {**row, **values.get(key, {})}
    octave = subprocess.run(["octave", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    doc = {
        "produced_by": "tests/metrics/reference_values/fr_make_reference.py --refs <matlab sources>",
        "engine": octave + " with octave-image",
        "pairs": "make_pairs() in fr_make_reference.py: skimage.data camera/astronaut/chelsea/coffee; "
        "blur1.5 = gaussian sigma 1.5 (scipy, reflect, truncate 4); noise10 = N(0, 10^2) seed 0 "
        "(numpy default_rng); dct40 = 8x8 DCT quantisation step 40; all rounded to uint8",
        "calls": {
            "vif": "vifvec(ref_gray, dist_gray) (LIVE 2006 release, matlabPyrTools .m fallbacks)",
            "vifp": "vifp_mscale(ref_gray, dist_gray)",
            "gmsd": "GMSD(ref_gray, dist_gray)",
            "fsim": "FeatureSIM(ref_rgb, dist_rgb) first output",
            "fsimc": "FeatureSIM(ref_rgb, dist_rgb) second output",
            "vsi": "VSI(ref_rgb, dist_rgb)",
            "mad": "MAD_index(ref_gray, dist_gray) (2011-10-07 release, MEX compiled with mkoctfile)",
            "nlpd": "NLP_dist(ref_gray/255, dist_gray/255)",
            "cw_ssim": "cwssim_index(ref_gray, dist_gray, 4, 8, 0, 0) (matlabPyrTools .m fallbacks)",
            "ciede2000": "mean(deltaE2000(rgb2lab(ref_rgb/255), rgb2lab(dist_rgb/255)))",
        },
        "inputs": "*_gray = MATLAB rgb2gray weights on the uint8 RGB as doubles, not rounded (0..255); "
        "*_rgb = uint8 RGB as doubles (0..255)",
        "values": values,
    }
    if args.pyiqa is not None:
        doc["pyiqa_crosscheck"] = run_pyiqa(args.pyiqa)
    elif args.metrics and "pyiqa_crosscheck" in (old_doc := json.loads(OUT.read_text())):
        doc["pyiqa_crosscheck"] = old_doc["pyiqa_crosscheck"]
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

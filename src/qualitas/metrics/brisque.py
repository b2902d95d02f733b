"""BRISQUE: Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy, Bovik 2012).

Reproduces the LIVE MATLAB release (``brisquescore.m``, ``brisque_feature.m``) with the
model the authors trained on the LIVE IQA database (libsvm epsilon-SVR, RBF kernel,
``allmodel``; feature ranges ``allrange``):

1. grayscale (``rgb2gray`` of the 8-bit image), on [0, 255];
2. at two scales (the second from ``imresize(im, 0.5)``, bicubic with antialiasing),
   MSCN coefficients (7x7 gaussian, sigma 7/6, zero padding as ``filter2(..., 'same')``):
   a GGD fit of the coefficients (shape, variance) and AGGD fits of their products with
   four neighbours (shape, mean, left and right variance), 18 features per scale;
3. the release writes the features with ``%f`` (6 decimals), rescales them to [-1, 1]
   with ``svm-scale -r allrange`` (printed with ``%g``) and runs ``svm-predict``; the same
   rounding and the RBF support-vector expansion are done here in torch, so libsvm is not
   needed: ``score = sum_i coef_i exp(-gamma |sv_i - x|^2) - rho``.

Lower is better; scores are nominally in [0, 100] but the SVR is not clipped (as in the
release). OpenCV's ``quality::QualityBRISQUE`` ships a different retraining
(``brisque_model_live.yml``, rho -149.6 vs -153.591 here) and uses 8-bit OpenCV
resizing/filters, so it differs from the release by a few points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from qualitas.functional.imresize import imresize
from qualitas.functional.nss import aggd_features, fit_ggd, mscn, to_gray255
from qualitas.metrics.base import METRICS, Metric, MetricInfo
from qualitas.metrics.niqe import check_input

MIN_SIDE = 16
"""Smallest accepted height/width: the half-scale image must still hold a 7x7 window."""

# Neighbour offsets (rows, cols) of the paired products, as circshift in brisque_feature.m.
BRISQUE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


@dataclass(frozen=True)
class SVRModel:
    """libsvm epsilon-SVR with RBF kernel plus the svm-scale feature ranges."""

    support_vectors: np.ndarray  # (n_sv, 36), already in the scaled space
    dual_coef: np.ndarray  # (n_sv,)
    rho: float
    gamma: float
    scale_lower: float
    scale_upper: float
    feature_min: np.ndarray  # (36,)
    feature_max: np.ndarray  # (36,)


@lru_cache(maxsize=1)
def svr_model() -> SVRModel:
    """The LIVE-trained BRISQUE model of the authors' release (``allmodel`` + ``allrange``)."""
    path = resources.files("qualitas.metrics") / "data" / "brisque_live_svr.npz"
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as d:
        return SVRModel(
            support_vectors=d["support_vectors"].copy(),
            dual_coef=d["dual_coef"].copy(),
            rho=float(d["rho"]),
            gamma=float(d["gamma"]),
            scale_lower=float(d["scale_lower"]),
            scale_upper=float(d["scale_upper"]),
            feature_min=d["feature_min"].copy(),
            feature_max=d["feature_max"].copy(),
        )


def brisque_features(x: torch.Tensor) -> torch.Tensor:
    """The 36 BRISQUE features of RGB ``x`` (B,3,H,W) in [0,1] -> (B, 36) float64."""
    check_input(x, "brisque", MIN_SIDE)
    img = to_gray255(x, quantize=True)
    feats = []
    for scale in (1, 2):
        m, _ = mscn(img, padding="zeros")
        flat = m.flatten(1)
        shape, variance = fit_ggd(flat)
        feats += [shape, variance]
        for dy, dx in BRISQUE_SHIFTS:
            pair = m * torch.roll(m, shifts=(dy, dx), dims=(-2, -1))
            f = aggd_features(pair.flatten(1))
            feats += [f["shape"], f["mean"], f["left_std"].square(), f["right_std"].square()]
        if scale == 1:
            img = imresize(img, 0.5)
    return torch.stack(feats, dim=-1)


def _round_significant(x: torch.Tensor, digits: int) -> torch.Tensor:
    """Round to ``digits`` significant digits, as C's ``%g`` prints (zeros stay zero)."""
    mag = torch.floor(torch.log10(x.abs().clamp(min=1e-300)))
    step = torch.pow(10.0, mag - (digits - 1))
    return torch.where(x == 0, x, torch.round(x / step) * step)


def svr_predict(features: torch.Tensor, model: SVRModel | None = None) -> torch.Tensor:
    """BRISQUE score from raw features (B, 36) -> (B,), as svm-scale + svm-predict."""
    model = model or svr_model()
    opts = {"dtype": torch.float64, "device": features.device}
    x = features.to(torch.float64)
    x = torch.round(x * 1e6) / 1e6  # fprintf('%f') in brisquescore.m
    lo = torch.as_tensor(model.feature_min, **opts)
    hi = torch.as_tensor(model.feature_max, **opts)
    a, b = model.scale_lower, model.scale_upper
    x = a + (b - a) * (x - lo) / (hi - lo)
    x = _round_significant(x, 6)  # svm-scale prints '%g'
    sv = torch.as_tensor(model.support_vectors, **opts)
    coef = torch.as_tensor(model.dual_coef, **opts)
    sq_dist = (x[:, None, :] - sv[None, :, :]).square().sum(dim=-1)  # exact, unlike cdist's mm path
    return torch.exp(-model.gamma * sq_dist) @ coef - model.rho


def brisque(x: torch.Tensor) -> torch.Tensor:
    """BRISQUE of RGB ``x`` (B,3,H,W) in [0,1] -> (B,) float64; lower is better.

    Needs H, W >= 16 (MediaError otherwise). A flat image gives NaN.
    """
    return svr_predict(brisque_features(x))


@METRICS.register("brisque")
class BRISQUE(Metric):
    info = MetricInfo(
        name="brisque",
        full_reference=False,
        higher_is_better=False,
        # The SVR output is not bounded: 0..100 is the nominal (DMOS) scale of its training
        # data, and synthetic patterns score ~150 (a checkerboard: 153.6). Not clipped, so
        # the stated range is the true one.
        range=(-math.inf, math.inf),
        input="RGB frames, at least 16x16; computed on MATLAB rgb2gray rounded to 8 bits; "
        "nominally 0..100, not clipped (synthetic patterns reach ~150)",
        reference=(
            "LIVE MATLAB release brisquescore.m + libsvm with the authors' LIVE model "
            "(allmodel/allrange); within 2% relative (run under GNU Octave)"
        ),
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return brisque(dist)

"""NIQE: Natural Image Quality Evaluator (Mittal, Soundararajan, Bovik 2013), no-reference.

Reproduces the LIVE MATLAB release (``computequality.m``, ``computefeature.m``,
``estimateaggdparam.m`` with ``modelparameters.mat``, called as
``computequality(im, 96, 96, 0, 0, mu_prisparam, cov_prisparam)``):

1. grayscale (``rgb2gray`` of the 8-bit image), cropped to whole 96x96 blocks;
2. at two scales (the second from ``imresize(im, 0.5)``, bicubic with antialiasing),
   MSCN coefficients (7x7 gaussian, sigma 7/6, replicate padding) are split into
   non-overlapping blocks of 96/scale pixels, and 18 AGGD features are fitted per block;
3. a multivariate gaussian fitted to the 36-d block features is compared with the
   pristine model: ``sqrt((mu_p - mu_d) pinv((S_p + S_d) / 2) (mu_p - mu_d)^T)``.

The release computes a per-block sharpness but never uses it when scoring (the 0.75
sharpness threshold only selects training patches in ``estimatemodelparam.m``), so every
block counts here too. Lower is better.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from qualitas.errors import MediaError
from qualitas.functional.imresize import imresize
from qualitas.functional.nss import aggd_features, mscn, to_gray255
from qualitas.metrics.base import METRICS, Metric, MetricInfo

BLOCK_SIZE = 96
# Neighbour offsets (rows, cols) of the paired products, as circshift in computefeature.m.
NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def pristine_params() -> tuple[np.ndarray, np.ndarray]:
    """``(mu (36,), cov (36, 36))`` of the pristine MVG from the LIVE release."""
    path = resources.files("qualitas.metrics") / "data" / "niqe_pris_params.npz"
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as d:
        return d["mu"].copy(), d["cov"].copy()


def check_input(x: torch.Tensor, name: str, min_side: int) -> None:
    """MediaError unless ``x`` is (B,3,H,W) or (B,1,H,W) with H, W >= ``min_side``."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise MediaError(f"{name} expects images (B,3,H,W) or (B,1,H,W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h < min_side or w < min_side:
        raise MediaError(f"{name} needs images of at least {min_side}x{min_side} pixels, got {w}x{h}")


def block_features(mscn_map: torch.Tensor, block: int) -> torch.Tensor:
    """18 NIQE features of each ``block`` x ``block`` tile of ``mscn_map`` (B,H,W) -> (B,N,18).

    H and W are multiples of ``block``; circular shifts wrap inside each tile, as
    ``circshift`` on the block that ``blkproc`` hands to ``computefeature``.
    """
    b, h, w = mscn_map.shape
    tiles = mscn_map.reshape(b, h // block, block, w // block, block).permute(0, 1, 3, 2, 4)
    tiles = tiles.reshape(b, -1, block, block)
    f = aggd_features(tiles.flatten(-2))
    feats = [f["shape"], (f["beta_l"] + f["beta_r"]) / 2]
    for dy, dx in NIQE_SHIFTS:
        pair = tiles * torch.roll(tiles, shifts=(dy, dx), dims=(-2, -1))
        f = aggd_features(pair.flatten(-2))
        feats += [f["shape"], f["mean"], f["beta_l"], f["beta_r"]]
    return torch.stack(feats, dim=-1)


def niqe_features(x: torch.Tensor, block: int = BLOCK_SIZE) -> torch.Tensor:
    """Per-block NIQE features of RGB ``x`` (B,3,H,W) in [0,1] -> (B, N, 36) float64."""
    check_input(x, "niqe", block)
    img = to_gray255(x, quantize=True)
    h, w = img.shape[-2:]
    img = img[:, : (h // block) * block, : (w // block) * block]
    feats = []
    for scale in (1, 2):
        m, _ = mscn(img, padding="replicate")
        feats.append(block_features(m, block // scale))
        if scale == 1:
            img = imresize(img, 0.5)
    return torch.cat(feats, dim=-1)


def _nan_mvg(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``nanmean`` and ``nancov`` of (B,N,D) -> (B,D), (B,D,D).

    nanmean ignores NaN per column; nancov uses the rows without NaN (N-1 normalisation).
    A single usable row gives a zero covariance (see module docs for the MATLAB quirk).
    """
    mu = torch.nanmean(feats, dim=1)
    complete = torch.isfinite(feats).all(dim=-1, keepdim=True)
    n = complete.sum(dim=1, keepdim=True).to(feats.dtype)
    x = torch.where(complete, feats, torch.zeros_like(feats))
    mean_c = x.sum(dim=1, keepdim=True) / n
    xc = torch.where(complete, x - mean_c, torch.zeros_like(x))
    cov = xc.transpose(1, 2) @ xc / (n - 1).clamp(min=1)
    return mu, cov


def niqe(x: torch.Tensor) -> torch.Tensor:
    """NIQE of RGB ``x`` (B,3,H,W) in [0,1] -> (B,) float64; lower is better.

    Needs H, W >= 96 (MediaError otherwise). An image with no usable block (e.g. flat)
    gives NaN.
    """
    feats = niqe_features(x)
    mu_d, cov_d = _nan_mvg(feats)
    mu_np, cov_np = pristine_params()
    mu_p = torch.as_tensor(mu_np, dtype=feats.dtype, device=feats.device)
    cov_p = torch.as_tensor(cov_np, dtype=feats.dtype, device=feats.device)
    diff = (mu_p - mu_d).unsqueeze(-1)
    out = torch.full((feats.shape[0],), float("nan"), dtype=feats.dtype, device=feats.device)
    ok = torch.isfinite(diff).all(dim=(1, 2)) & torch.isfinite(cov_d).all(dim=(1, 2))
    if ok.any():
        inv = torch.linalg.pinv((cov_p + cov_d[ok]) / 2)
        d = diff[ok]
        out[ok] = torch.sqrt((d.transpose(1, 2) @ inv @ d).reshape(-1))
    return out


@METRICS.register("niqe")
class NIQE(Metric):
    info = MetricInfo(
        name="niqe",
        full_reference=False,
        higher_is_better=False,
        range=(0.0, float("inf")),
        input="RGB frames, at least 96x96; computed on MATLAB rgb2gray rounded to 8 bits",
        reference=(
            "LIVE MATLAB release computequality.m + modelparameters.mat (Mittal et al. 2013); "
            "within 2% relative (run under GNU Octave)"
        ),
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return niqe(dist)

"""VIF, visual information fidelity (Sheikh & Bovik 2006), the wavelet-domain original.

Reproduces LIVE's ``vifvec.m`` (release 2006, with ``vifsub_est_M.m``, ``refparams_vecgsm.m``,
``ind2wtree.m`` and matlabPyrTools): what the paper, the LIVE/TID/CSIQ benchmark tables and
pyiqa call VIF. The pixel-domain simplification ``vifp_mscale.m`` is ``vifp``
(:mod:`qualitas.metrics.vifp`).

1. grayscale as MATLAB ``rgb2gray`` on 0..255 (not rounded), as for the other gray metrics;
2. ``buildSpyr(img, 4, 'sp5Filters', 'reflect1')``: a 4-level, 6-orientation real steerable
   pyramid; VIF uses orientations 1 and 4 (0 and 90 degrees) of every level
   (``subbands = [4 7 10 13 16 19 22 25]`` in ``ind2wtree`` order);
3. per band, cropped to a multiple of M = 3: the distortion channel ``d = g c + v`` from local
   moments over a (2^(5-l) + 1)^2 box (17, 9, 5, 3 for levels l = 1..4, finest first),
   ``'reflect1'`` borders, one estimate per non-overlapping 3x3 block; the reference's vector
   GSM: covariance C_U of all overlapping 3x3 blocks, its eigenvalues lambda_k, and the
   multiplier field s^2 = x^T C_U^-1 x / 9 of each non-overlapping block;
4. borders dropped (``ceil(((win - 1) / 2) / 3)`` blocks each side), sigma_n^2 = 0.4, and
   ``VIF = sum log2(1 + g^2 s^2 lambda_k / (v + sigma_n^2)) / sum log2(1 + s^2 lambda_k / sigma_n^2)``
   over blocks, eigenvalues and bands.

H. R. Sheikh, A. C. Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.fr_filters import check_pair
from qualitas.functional.steerable import SPYR_FILTER_SIZE, spyr_bands
from qualitas.metrics.base import METRICS, Metric, MetricInfo

LEVELS = 4
ORIENTATIONS = (0, 3)  # sp5Filters bands 1 and 4 (MATLAB numbering)
M = 3
SIGMA_NSQ = 0.4
TOL = 1e-15  # vifsub_est_M.m's tolerance for zero variance
MIN_SIZE = SPYR_FILTER_SIZE * 2 ** (LEVELS - 1)  # 72: buildSpyr refuses 4 levels below it


def _box_sums(x: torch.Tensor, win: int) -> torch.Tensor:
    """``corrDn(x, ones(win), 'reflect1', [M M], [2 2], size - 1)``: sums over win x win
    boxes centred on the middle sample of every 3x3 block. x: (N, C, h, w) with h, w
    multiples of M -> (N, C, h/M, w/M). Done as two 1-D passes (the box is separable)."""
    a = win // 2
    c = x.shape[1]
    xp = F.pad(x, (a, a, a, a), mode="reflect")[..., M // 2 :, M // 2 :]
    ones = torch.ones(c, 1, win, 1, dtype=x.dtype, device=x.device)
    y = F.conv2d(xp, ones, stride=(M, 1), groups=c)
    return F.conv2d(y, ones.transpose(2, 3), stride=(1, M), groups=c)


def _channel(y: torch.Tensor, yn: torch.Tensor, win: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``vifsub_est_M.m`` for one band: gain g and noise variance v per 3x3 block.

    y, yn: reference and distorted band (B, h, w), cropped to multiples of M -> two (B, h/M, w/M).
    """
    n = float(win * win)
    s = _box_sums(torch.stack([y, yn, y * yn, y * y, yn * yn], dim=1), win)
    mean_x, mean_y = s[:, 0] / n, s[:, 1] / n
    cov_xy = s[:, 2] - n * mean_x * mean_y
    ss_x = (s[:, 3] - n * mean_x**2).clamp_min(0)
    ss_y = (s[:, 4] - n * mean_y**2).clamp_min(0)
    g = cov_xy / (ss_x + TOL)
    vv = (ss_y - g * cov_xy) / n
    # The reference's sequence of special cases, in its order.
    flat_x = ss_x < TOL
    g = torch.where(flat_x, 0.0, g)
    vv = torch.where(flat_x, ss_y, vv)
    flat_y = ss_y < TOL
    g = torch.where(flat_y, 0.0, g)
    vv = torch.where(flat_y, 0.0, vv)
    neg = g < 0
    vv = torch.where(neg, ss_y, vv)
    g = g.clamp_min(0)
    vv = torch.where(vv <= TOL, TOL, vv)
    return g, vv


def _gsm(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``refparams_vecgsm.m`` for one band: multiplier field s^2 and eigenvalues of C_U.

    y: reference band (B, h, w), cropped to multiples of M -> ((B, h/M, w/M), (B, M*M)).
    """
    b, h, w = y.shape
    # All overlapping MxM blocks as M*M shifted views; C_U is their (biased) covariance.
    shifts = [y[:, k : h - (M - 1 - k), j : w - (M - 1 - j)] for j in range(M) for k in range(M)]
    count = shifts[0][0].numel()
    centred = [v - v.mean(dim=(1, 2), keepdim=True) for v in shifts]
    cu = torch.empty(b, M * M, M * M, dtype=y.dtype, device=y.device)
    for p in range(M * M):
        for q in range(p, M * M):
            cu[:, p, q] = cu[:, q, p] = (centred[p] * centred[q]).sum(dim=(1, 2)) / count
    # Non-overlapping blocks as vectors, in the same (column offset, row offset) order.
    blocks = y.view(b, h // M, M, w // M, M).permute(0, 1, 3, 4, 2).reshape(b, h // M, w // M, M * M)
    inv = torch.linalg.inv(cu)
    ss = torch.einsum("bijp,bpq,bijq->bij", blocks, inv, blocks) / (M * M)
    return ss, torch.linalg.eigvalsh(cu)


def vif(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Wavelet-domain VIF of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,) float32, as ``vifvec.m``.

    1 for identical images, larger than 1 for contrast enhancement, towards 0 as information
    is lost; NaN for a flat reference (C_U is singular), as in the reference code. Computed
    in float64 (the eigenvalues and C_U^-1 need it).
    """
    check_pair(dist, ref, name="vif", min_size=MIN_SIZE)
    b = ref.shape[0]
    gray = rgb_to_gray_matlab(torch.cat([ref, dist], dim=0).to(torch.float64)) * 255.0
    pyramid = spyr_bands(gray, LEVELS, ORIENTATIONS)  # per level (2B, 2, h, w)
    num = torch.zeros(b, dtype=torch.float64, device=gray.device)
    den = torch.zeros_like(num)
    for level, bands in enumerate(pyramid, start=1):
        win = 2 ** (LEVELS + 1 - level) + 1
        offset = math.ceil((win - 1) / 2 / M)
        h, w = (s // M * M for s in bands.shape[-2:])
        for o in range(bands.shape[1]):
            y, yn = bands[:b, o, :h, :w], bands[b:, o, :h, :w]
            g, vv = _channel(y, yn, win)
            ss, lam = _gsm(y)
            crop = (slice(None), slice(offset, g.shape[1] - offset), slice(offset, g.shape[2] - offset))
            g, vv, ss = g[crop].unsqueeze(-1), vv[crop].unsqueeze(-1), ss[crop].unsqueeze(-1)
            lam = lam[:, None, None, :]
            num += torch.log2(1 + g * g * ss * lam / (vv + SIGMA_NSQ)).sum(dim=(1, 2, 3))
            den += torch.log2(1 + ss * lam / SIGMA_NSQ).sum(dim=(1, 2, 3))
    return (num / den).float()


@METRICS.register("vif")
class VIF(Metric):
    """Wavelet-domain VIF (higher is better); see :func:`vif`."""

    info = MetricInfo(
        name="vif",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, float("inf")),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}; computed on MATLAB rgb2gray luma",
        reference="vifvec.m (LIVE 2006, steerable pyramid) + matlabPyrTools run in GNU Octave; tested to 1e-4 relative",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return vif(dist, ref)

"""MAD, most apparent distortion (Larson & Chandler 2010).

Reproduces ``MAD_index.m`` (release 2011-10-07) with its MEX helpers ``ical_std`` and
``ical_stat``, on grayscale (MATLAB ``rgb2gray`` weights, 0..255, floating point as the
release's non-integer path):

* high-quality index: luminance ``0.02874 * x^(2.2/3)``, a CSF applied in the frequency
  domain, 16x16 block statistics on a stride-4 grid (error std, reference min-of-four
  8x8 std, reference mean), the masking map, a 16x16 box local MSE ('symmetric'
  borders), edges of 16/17 pixels dropped, RMS x 200;
* low-quality index: 5-scale x 4-orientation log-Gabor magnitudes, 16x16 block std,
  skewness and kurtosis on the stride-4 grid, scale weights (0.5, 0.75, 1, 5, 6)/13.25,
  RMS over the map without its edges;
* MAD = LO^(1-a) HI^a with a = 1 / (1 + b1 HI^b2), b1 = exp(-2.55/3.35),
  b2 = 1/(3.35 ln 10).

E. C. Larson, D. M. Chandler, "Most apparent distortion: full-reference image quality
assessment and the role of strategy", J. Electronic Imaging 19(1), 2010.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.filters import pad_symmetric
from qualitas.functional.fr_filters import check_pair
from qualitas.functional.loggabor import mad_gabor_bank
from qualitas.metrics.base import METRICS, Metric, MetricInfo

BLOCK, STEP = 16, 4
K_LUM, G_LUM = 0.02874, 0.5
CI_THRESH, CD_THRESH, C_SLOPE, MS_SCALE = -5.0, -5.0, 1.0, 1.0
SCALE_WEIGHTS = (0.5, 0.75, 1.0, 5.0, 6.0)
THRESH1, THRESH2 = 2.55, 3.35
# Edges dropped before pooling: rows BSIZE+1 .. end-BSIZE-1 (1-based) must not be empty.
MIN_SIZE = 2 * BLOCK + 2


@functools.lru_cache(maxsize=8)
def _csf(rows: int, cols: int, nfreq: float = 32.0) -> np.ndarray:
    """``make_csf(rows, cols, 32)'`` of MAD_index.m, (rows, cols), centred spectrum layout."""
    # make_csf(x=rows, y=cols) builds a (cols, rows) map normalised by y; the caller transposes.
    xplane, yplane = np.meshgrid(np.arange(rows) - rows / 2 + 0.5, np.arange(cols) - cols / 2 + 0.5)
    plane = (xplane + 1j * yplane) / cols * 2 * nfreq
    radfreq = np.abs(plane)
    w = 0.7
    s = (1 - w) / 2 * np.cos(4 * np.angle(plane)) + (1 + w) / 2
    radfreq = radfreq / s
    csf = 2.6 * (0.0192 + 0.114 * radfreq) * np.exp(-((0.114 * radfreq) ** 1.1))
    csf[radfreq < 7.8909] = 0.9809
    return csf.T.copy()


def _block_stats(x: torch.Tensor, cells: int, orders: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mean and central moments E[(x - mean)^k], k = 2..orders, of the (4*cells)^2 blocks
    that start on the stride-4 grid at j < H - 15 (the MEX loops' bound, also used there
    for the 8x8 sub-blocks). (N,C,H,W) -> (N,C,nH,nW) and a list of the same shape.

    Computed without cancellation, so nearly flat blocks keep exact low moments (the MEX
    sums (x - mean)^k directly): central moments of the 4x4 cells first, then combined into
    blocks with the exact shift formula sum (x - m_b)^k = sum_j C(k,j) d^(k-j) sum (x - m_c)^j,
    d = m_c - m_b.
    """
    n, c, h, w = x.shape
    nh, nw = (h - BLOCK + STEP) // STEP, (w - BLOCK + STEP) // STEP
    ch, cw = nh + cells - 1, nw + cells - 1
    xc = x[..., : ch * STEP, : cw * STEP].reshape(n, c, ch, STEP, cw, STEP)
    mu_c = xc.mean(dim=(3, 5))
    dev = xc - mu_c[:, :, :, None, :, None]
    dev2 = dev * dev
    cell_m = {2: dev2.sum(dim=(3, 5))}
    if orders >= 3:
        cell_m[3] = (dev2 * dev).sum(dim=(3, 5))
    if orders >= 4:
        cell_m[4] = (dev2 * dev2).sum(dim=(3, 5))
    mu_b = F.avg_pool2d(mu_c, cells, stride=1)

    def blocks(t: torch.Tensor) -> torch.Tensor:
        """(N,C,ch,cw) cell map -> (N,C,nH,nW,cells,cells) strided view of each block's cells."""
        return t.unfold(2, cells, 1).unfold(3, cells, 1)

    def box_sum(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, cells, stride=1) * (cells * cells)

    npix = STEP * STEP
    d = blocks(mu_c) - mu_b[..., None, None]
    d2 = d * d
    m2 = box_sum(cell_m[2]) + npix * d2.sum(dim=(-2, -1))
    out = [m2]
    if orders >= 3:
        cm2 = blocks(cell_m[2])
        out.append(box_sum(cell_m[3]) + (d * (npix * d2 + 3 * cm2)).sum(dim=(-2, -1)))
    if orders >= 4:
        cm3 = blocks(cell_m[3])
        out.append(box_sum(cell_m[4]) + (d2 * (npix * d2 + 6 * cm2) + 4 * d * cm3).sum(dim=(-2, -1)))
    total = float(npix * cells * cells)
    return mu_b, [m / total for m in out]


def _expand(stat: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Write each block's value into its 4x4 cell; cells no block covers stay 0 (as the MEX)."""
    full = stat.repeat_interleave(STEP, dim=-2).repeat_interleave(STEP, dim=-1)
    return F.pad(full, (0, w - full.shape[-1], 0, h - full.shape[-2]))


def _ical_std(err: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAD's ``ical_std(err, ref)`` on the block grid: std of err (16x16), min std of ref
    over four 8x8 sub-blocks, mean of ref (16x16); (B,1,H,W) -> three (B,1,nH,nW)."""
    h, w = err.shape[-2:]
    _, (var_err,) = _block_stats(err, BLOCK // STEP, 2)
    std_err = (var_err * (256 / 255)).sqrt()
    mean_ref, _ = _block_stats(ref, BLOCK // STEP, 2)
    _, (var8,) = _block_stats(ref, 2, 2)
    std8 = (var8 * (64 / 63)).sqrt()
    # Min over the 8x8 blocks starting at offsets {0, 5} -> grid cells {0, +1} (offset 5
    # falls in the cell of the block at +4), each used only if its start index + 5 is
    # still below the loop bound (H - 15), exactly as the MEX's test.
    nh, nw = std8.shape[-2:]
    big = torch.full_like(std8, float("inf"))
    down = torch.cat([std8[..., 1:, :], big[..., :1, :]], dim=-2)
    right = torch.cat([std8[..., :, 1:], big[..., :, :1]], dim=-1)
    diag = torch.cat([down[..., :, 1:], big[..., :, :1]], dim=-1)
    rows_ok = (torch.arange(nh, device=err.device) * STEP + 5 < h - 15).view(-1, 1)
    cols_ok = (torch.arange(nw, device=err.device) * STEP + 5 < w - 15).view(1, -1)
    inf = torch.tensor(float("inf"), dtype=std8.dtype, device=std8.device)
    std_min = torch.minimum(std8, torch.where(rows_ok, down, inf))
    std_min = torch.minimum(std_min, torch.where(cols_ok, right, inf))
    std_min = torch.minimum(std_min, torch.where(rows_ok & cols_ok, diag, inf))
    return std_err, std_min, mean_ref


def _ical_stat(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAD's ``ical_stat`` on the block grid: 16x16 block std (N-1), skewness and kurtosis
    (population); (N,C,H,W) -> three (N,C,nH,nW)."""
    _, (var, c3, c4) = _block_stats(x, BLOCK // STEP, 4)
    std_pop = var.sqrt()
    nz = std_pop > 0
    safe = torch.where(nz, std_pop, torch.ones_like(std_pop))
    skw = torch.where(nz, c3 / safe**3, torch.zeros_like(c3))
    krt = torch.where(nz, c4 / safe**4, torch.zeros_like(c4))
    std = (var * (256 / 255)).sqrt()
    return std, skw, krt


def _crop_rms(x: torch.Tensor) -> torch.Tensor:
    """norm(mp(BSIZE+1:end-BSIZE-1, ...)) / sqrt(numel) of (B,1,H,W) -> (B,)."""
    core = x[..., BLOCK : x.shape[-2] - BLOCK - 1, BLOCK : x.shape[-1] - BLOCK - 1]
    return core.square().flatten(1).mean(dim=1).sqrt()


def hi_index(ref: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """MAD's detection-based (high quality) index of gray (B,1,H,W) 0..255 images -> (B,)."""
    h, w = ref.shape[-2:]
    csf = torch.from_numpy(_csf(h, w)).to(ref.device)
    lum = K_LUM * torch.cat([ref, dst], dim=1).clamp_min(0) ** (2.2 / 3)
    spec = torch.fft.fftshift(torch.fft.fft2(lum), dim=(-2, -1)) * csf
    lum = torch.fft.ifft2(torch.fft.ifftshift(spec, dim=(-2, -1))).real
    ref_l, dst_l = lum[:, :1], lum[:, 1:]
    std_2, std_1, m1_1 = _ical_std(dst_l - ref_l, ref_l)
    # MATLAB: the log of a negative block mean (possible after the CSF) is complex, and
    # relational operators compare real parts; all such blocks, and those darker than
    # G, get Ci_dst = -inf and are never selected. torch gives NaN there: same outcome.
    ci_ref = torch.log(std_1 / m1_1)
    ci_dst = torch.where(m1_1 < G_LUM, float("-inf"), torch.log(std_2 / m1_1))
    sel1 = (ci_ref > CI_THRESH) & (ci_dst > C_SLOPE * (ci_ref - CI_THRESH) + CD_THRESH)
    sel2 = (ci_ref <= CI_THRESH) & (ci_dst > CD_THRESH)
    msk = torch.zeros_like(ci_dst)
    msk = torch.where(sel1, (ci_dst - (C_SLOPE * (ci_ref - CI_THRESH) + CD_THRESH)) / MS_SCALE, msk)
    msk = torch.where(sel2, (ci_dst - CD_THRESH) / MS_SCALE, msk)
    # Pixels that no block covers keep msk = 0, as the MEX leaves their statistics at 0.
    msk = _expand(msk, h, w)
    # imfilter(e.^2, ones(16)/256, 'symmetric', 'same', 'conv'): taps -7..+8 around each
    # pixel; a stride-1 average pool on the padded map is the same sum, much faster.
    lmse = F.avg_pool2d(pad_symmetric((ref - dst) ** 2, 7, 8, 7, 8), BLOCK, stride=1)
    return _crop_rms(msk * lmse) * 200.0


def lo_index(ref: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """MAD's appearance-based (low quality) index of gray (B,1,H,W) 0..255 images -> (B,)."""
    b, _, h, w = ref.shape
    bank = mad_gabor_bank(h, w, device=ref.device)  # (5, 4, H, W)
    spec = torch.fft.fft2(torch.cat([ref, dst], dim=0)[:, 0])  # (2B, H, W)
    weights = torch.tensor(SCALE_WEIGHTS, dtype=ref.dtype) / sum(SCALE_WEIGHTS)
    mp = torch.zeros((), dtype=ref.dtype, device=ref.device)  # block grid, broadcast on first add
    for s in range(bank.shape[0]):
        # One scale at a time bounds memory: (2B, 4, H, W) magnitudes.
        mag = torch.fft.ifft2(spec[:, None] * bank[s][None]).abs()
        std, skw, krt = _ical_stat(mag)
        d = (std[:b] - std[b:]).abs() + 2 * (skw[:b] - skw[b:]).abs() + (krt[:b] - krt[b:]).abs()
        mp = mp + weights[s].item() * d.sum(dim=1, keepdim=True)
    return _crop_rms(_expand(mp, h, w))


def mad(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """MAD of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,); 0 when identical, larger is worse."""
    check_pair(dist, ref, name="mad", min_size=MIN_SIZE)
    r = rgb_to_gray_matlab(ref.to(torch.float64)) * 255.0
    d = rgb_to_gray_matlab(dist.to(torch.float64)) * 255.0
    hi = hi_index(r, d)
    lo = lo_index(r, d)
    b1 = math.exp(-THRESH1 / THRESH2)
    b2 = 1.0 / (math.log(10) * THRESH2)
    sig = 1.0 / (1.0 + b1 * hi**b2)
    return (lo ** (1 - sig) * hi**sig).float()


@METRICS.register("mad")
class MAD(Metric):
    """MAD (lower is better) on MATLAB-rgb2gray luma; see :func:`mad`."""

    info = MetricInfo(
        name="mad",
        full_reference=True,
        higher_is_better=False,
        range=(0.0, float("inf")),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}; computed on MATLAB rgb2gray luma",
        reference="MAD_index.m 2011-10-07 with its MEX files, run in GNU Octave; tested to 1e-4 relative",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return mad(dist, ref)

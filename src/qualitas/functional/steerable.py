"""Complex steerable pyramid (Simoncelli's ``buildSCFpyr``), batched in torch.

Only what CW-SSIM needs: the complex oriented bands of one pyramid level, computed in the
Fourier domain exactly as ``buildSCFpyr.m`` / ``buildSCFpyrLevs.m`` of matlabPyrTools
(raised-cosine radial masks from ``rcosFn``, ``pointOp`` linear look-ups, the angular
lobe ``2 sqrt(c) cos^order`` restricted to one half-plane, the low-pass spectrum cropped
to ``ceil((dims - 0.5)/2)`` at each level). The masks depend only on the image size and
are built once in float64 and cached.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def _point_op(im: np.ndarray, lut: np.ndarray, origin: float, increment: float) -> np.ndarray:
    """matlabPyrTools ``pointOp``: linear interpolation in an equispaced table, linear
    extrapolation beyond it."""
    pos = (im - origin) / increment
    i = np.clip(np.floor(pos).astype(np.int64), 0, lut.size - 2)
    frac = pos - i
    return lut[i] * (1 - frac) + lut[i + 1] * frac


def _rcos(width: float, position: float) -> tuple[np.ndarray, np.ndarray]:
    """``rcosFn(width, position, [0 1])``."""
    sz = 256
    x = math.pi * np.arange(-sz - 1, 2) / (2 * sz)
    y = np.cos(x) ** 2
    y[0] = y[1]
    y[sz + 2] = y[sz + 1]
    return position + (2 * width / math.pi) * (x + math.pi / 4), y


def _polar_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """log2 radius and angle of buildSCFpyr's centred frequency grid."""
    ctr = (math.ceil((rows + 0.5) / 2), math.ceil((cols + 0.5) / 2))
    xr = (np.arange(1, cols + 1) - ctr[1]) / (cols / 2)
    yr = (np.arange(1, rows + 1) - ctr[0]) / (rows / 2)
    xramp, yramp = np.meshgrid(xr, yr)
    angle = np.arctan2(yramp, xramp)
    rad = np.sqrt(xramp**2 + yramp**2)
    rad[ctr[0] - 1, ctr[1] - 1] = rad[ctr[0] - 1, ctr[1] - 2]
    return np.log2(rad), angle


def max_pyramid_height(rows: int, cols: int) -> int:
    """buildSCFpyr's ``floor(log2(min(size))) - 2``."""
    return int(math.floor(math.log2(min(rows, cols)))) - 2


@functools.lru_cache(maxsize=8)
def _level_masks(
    rows: int, cols: int, level: int, nbands: int
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Per-band complex masks applied to the centred full-size spectrum to get the bands
    of pyramid ``level`` (1-based), and the crop windows taken before it.

    Returns ``(masks (nbands, h, w) complex, crops)``: the spectrum is cropped by each
    window in turn, multiplied by the accumulated low-pass product, then by each band mask.
    """
    log_rad, angle = _polar_grid(rows, cols)
    xrcos, yrcos = _rcos(1.0, -0.5)
    yrcos = np.sqrt(yrcos)
    yircos = np.sqrt(1.0 - yrcos**2)
    inc = xrcos[1] - xrcos[0]
    lowpass = _point_op(log_rad, yircos, xrcos[0], inc)  # lo0mask
    crops = []
    for _ in range(level - 1):
        # Band level passes through; only the low-pass chain matters for deeper levels.
        xrcos = xrcos - 1.0
        h, w = log_rad.shape
        ctr = (math.ceil((h + 0.5) / 2), math.ceil((w + 0.5) / 2))
        lodims = (math.ceil((h - 0.5) / 2), math.ceil((w - 0.5) / 2))
        loctr = (math.ceil((lodims[0] + 0.5) / 2), math.ceil((lodims[1] + 0.5) / 2))
        r0, c0 = ctr[0] - loctr[0], ctr[1] - loctr[1]
        crops.append((r0, r0 + lodims[0], c0, c0 + lodims[1]))
        log_rad = log_rad[r0 : r0 + lodims[0], c0 : c0 + lodims[1]]
        angle = angle[r0 : r0 + lodims[0], c0 : c0 + lodims[1]]
        lowpass = lowpass[r0 : r0 + lodims[0], c0 : c0 + lodims[1]]
        lowpass = lowpass * _point_op(log_rad, np.abs(np.sqrt(1.0 - yrcos**2)), xrcos[0], inc)
    # Bands of this level.
    xrcos = xrcos - 1.0
    lutsize = 1024
    xcosn = math.pi * np.arange(-(2 * lutsize + 1), lutsize + 2) / lutsize
    order = nbands - 1
    const = (2 ** (2 * order)) * (math.factorial(order) ** 2) / (nbands * math.factorial(2 * order))
    alfa = np.mod(math.pi + xcosn, 2 * math.pi) - math.pi
    ycosn = 2 * math.sqrt(const) * (np.cos(xcosn) ** order) * (np.abs(alfa) < math.pi / 2)
    himask = _point_op(log_rad, yrcos, xrcos[0], inc)
    masks = np.empty((nbands, *log_rad.shape), dtype=np.complex128)
    for b in range(nbands):
        anglemask = _point_op(angle, ycosn, xcosn[0] + math.pi * b / nbands, xcosn[1] - xcosn[0])
        masks[b] = ((-1j) ** (nbands - 1)) * lowpass * anglemask * himask
    return masks, crops


def scf_level_bands(x: torch.Tensor, level: int, nbands: int) -> torch.Tensor:
    """Complex bands of level ``level`` (1-based) of ``buildSCFpyr(x, ht>=level, nbands-1)``.

    x: (B, H, W) real -> (B, nbands, h, w) complex128 with (h, w) the level's size.
    """
    rows, cols = x.shape[-2:]
    masks_np, crops = _level_masks(rows, cols, level, nbands)
    spec = torch.fft.fftshift(torch.fft.fft2(x.to(torch.float64)), dim=(-2, -1))
    for r0, r1, c0, c1 in crops:
        spec = spec[..., r0:r1, c0:c1]
    masks = torch.from_numpy(masks_np).to(x.device)
    banddft = spec[:, None] * masks[None]
    return torch.fft.ifft2(torch.fft.ifftshift(banddft, dim=(-2, -1)))

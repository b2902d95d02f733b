"""Steerable pyramids of Simoncelli's matlabPyrTools, batched in torch.

* :func:`scf_level_bands`: the complex pyramid ``buildSCFpyr`` (Fourier domain), only what
  CW-SSIM needs: the complex oriented bands of one pyramid level, computed exactly as
  ``buildSCFpyr.m`` / ``buildSCFpyrLevs.m`` (raised-cosine radial masks from ``rcosFn``,
  ``pointOp`` linear look-ups, the angular lobe ``2 sqrt(c) cos^order`` restricted to one
  half-plane, the low-pass spectrum cropped to ``ceil((dims - 0.5)/2)`` at each level). The
  masks depend only on the image size and are built once in float64 and cached.
* :func:`spyr_bands`: the real, spatial pyramid ``buildSpyr(im, ht, 'sp5Filters',
  'reflect1')`` (6 orientations, what VIF uses): ``corrDn`` correlations with the
  ``sp5Filters`` taps and mirrored borders, the low-pass decimated by 2 between levels.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F


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


# ---- spatial steerable pyramid (buildSpyr with sp5Filters) -----------------------------------

# The taps of matlabPyrTools' ``sp5Filters.m`` (Simoncelli; the same values ship in the
# MIT-licensed Python port ``pyrtools``), as printed there to 8 decimals: ``lo0filt`` (5x5),
# ``lofilt`` (9x9, listed halved: the file multiplies by 2) and the 6 oriented ``bfilts``
# (each 7x7, MATLAB's ``reshape(bfilts(:, b), 7, 7)``). Band b is steered to the angle
# (b - 1) * 30 degrees; harmonics (1, 3, 5). hi0filt is not needed (VIF drops the high-pass residual).
_SP5_LO0 = (
    (0.00341614, -0.01551246, -0.03848215, -0.01551246, 0.00341614),
    (-0.01551246, 0.05586982, 0.1592557, 0.05586982, -0.01551246),
    (-0.03848215, 0.1592557, 0.40304148, 0.1592557, -0.03848215),
    (-0.01551246, 0.05586982, 0.1592557, 0.05586982, -0.01551246),
    (0.00341614, -0.01551246, -0.03848215, -0.01551246, 0.00341614),
)
_SP5_LO_HALF = (
    (
        0.00085404,
        -0.00244917,
        -0.00387812,
        -0.00944432,
        -0.00962054,
        -0.00944432,
        -0.00387812,
        -0.00244917,
        0.00085404,
    ),
    (
        -0.00244917,
        -0.00523281,
        -0.00661117,
        0.004106,
        0.01002988,
        0.004106,
        -0.00661117,
        -0.00523281,
        -0.00244917,
    ),
    (
        -0.00387812,
        -0.00661117,
        0.01396746,
        0.03277038,
        0.03981393,
        0.03277038,
        0.01396746,
        -0.00661117,
        -0.00387812,
    ),
    (
        -0.00944432,
        0.004106,
        0.03277038,
        0.06426333,
        0.08169618,
        0.06426333,
        0.03277038,
        0.004106,
        -0.00944432,
    ),
    (
        -0.00962054,
        0.01002988,
        0.03981393,
        0.08169618,
        0.1009654,
        0.08169618,
        0.03981393,
        0.01002988,
        -0.00962054,
    ),
    (
        -0.00944432,
        0.004106,
        0.03277038,
        0.06426333,
        0.08169618,
        0.06426333,
        0.03277038,
        0.004106,
        -0.00944432,
    ),
    (
        -0.00387812,
        -0.00661117,
        0.01396746,
        0.03277038,
        0.03981393,
        0.03277038,
        0.01396746,
        -0.00661117,
        -0.00387812,
    ),
    (
        -0.00244917,
        -0.00523281,
        -0.00661117,
        0.004106,
        0.01002988,
        0.004106,
        -0.00661117,
        -0.00523281,
        -0.00244917,
    ),
    (
        0.00085404,
        -0.00244917,
        -0.00387812,
        -0.00944432,
        -0.00962054,
        -0.00944432,
        -0.00387812,
        -0.00244917,
        0.00085404,
    ),
)
_SP5_BANDS = (
    (
        (0.00277643, -0.00986904, -0.01021852, 0.0, 0.01021852, 0.00986904, -0.00277643),
        (0.00496194, -0.00893064, -0.03075356, 0.0, 0.03075356, 0.00893064, -0.00496194),
        (0.01026699, 0.01189859, -0.08226445, 0.0, 0.08226445, -0.01189859, -0.01026699),
        (0.01455399, 0.02755155, -0.11732297, 0.0, 0.11732297, -0.02755155, -0.01455399),
        (0.01026699, 0.01189859, -0.08226445, 0.0, 0.08226445, -0.01189859, -0.01026699),
        (0.00496194, -0.00893064, -0.03075356, 0.0, 0.03075356, 0.00893064, -0.00496194),
        (0.00277643, -0.00986904, -0.01021852, 0.0, 0.01021852, 0.00986904, -0.00277643),
    ),
    (
        (-0.00343249, -0.00358461, 0.01047717, 0.00790407, 0.00459034, -0.00128, -0.01166982),
        (-0.00640815, -0.01977507, 0.01486305, 0.04435647, -0.00853965, -0.01161195, -0.00285723),
        (-0.00073141, -0.04084211, -0.04819057, 0.09454202, 0.05394139, -0.03930573, -0.00182078),
        (0.01124321, -0.00228219, -0.1222723, 0.0, 0.1222723, 0.00228219, -0.01124321),
        (0.00182078, 0.03930573, -0.05394139, -0.09454202, 0.04819057, 0.04084211, 0.00073141),
        (0.00285723, 0.01161195, 0.00853965, -0.04435647, -0.01486305, 0.01977507, 0.00640815),
        (0.01166982, 0.00128, -0.00459034, -0.00790407, -0.01047717, 0.00358461, 0.00343249),
    ),
    (
        (0.00343249, 0.00640815, 0.00073141, -0.01124321, -0.00182078, -0.00285723, -0.01166982),
        (0.00358461, 0.01977507, 0.04084211, 0.00228219, -0.03930573, -0.01161195, -0.00128),
        (-0.01047717, -0.01486305, 0.04819057, 0.1222723, 0.05394139, -0.00853965, 0.00459034),
        (-0.00790407, -0.04435647, -0.09454202, 0.0, 0.09454202, 0.04435647, 0.00790407),
        (-0.00459034, 0.00853965, -0.05394139, -0.1222723, -0.04819057, 0.01486305, 0.01047717),
        (0.00128, 0.01161195, 0.03930573, -0.00228219, -0.04084211, -0.01977507, -0.00358461),
        (0.01166982, 0.00285723, 0.00182078, 0.01124321, -0.00073141, -0.00640815, -0.00343249),
    ),
    (
        (-0.00277643, -0.00496194, -0.01026699, -0.01455399, -0.01026699, -0.00496194, -0.00277643),
        (0.00986904, 0.00893064, -0.01189859, -0.02755155, -0.01189859, 0.00893064, 0.00986904),
        (0.01021852, 0.03075356, 0.08226445, 0.11732297, 0.08226445, 0.03075356, 0.01021852),
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        (-0.01021852, -0.03075356, -0.08226445, -0.11732297, -0.08226445, -0.03075356, -0.01021852),
        (-0.00986904, -0.00893064, 0.01189859, 0.02755155, 0.01189859, -0.00893064, -0.00986904),
        (0.00277643, 0.00496194, 0.01026699, 0.01455399, 0.01026699, 0.00496194, 0.00277643),
    ),
    (
        (-0.01166982, -0.00285723, -0.00182078, -0.01124321, 0.00073141, 0.00640815, 0.00343249),
        (-0.00128, -0.01161195, -0.03930573, 0.00228219, 0.04084211, 0.01977507, 0.00358461),
        (0.00459034, -0.00853965, 0.05394139, 0.1222723, 0.04819057, -0.01486305, -0.01047717),
        (0.00790407, 0.04435647, 0.09454202, 0.0, -0.09454202, -0.04435647, -0.00790407),
        (0.01047717, 0.01486305, -0.04819057, -0.1222723, -0.05394139, 0.00853965, -0.00459034),
        (-0.00358461, -0.01977507, -0.04084211, -0.00228219, 0.03930573, 0.01161195, 0.00128),
        (-0.00343249, -0.00640815, -0.00073141, 0.01124321, 0.00182078, 0.00285723, 0.01166982),
    ),
    (
        (-0.01166982, -0.00128, 0.00459034, 0.00790407, 0.01047717, -0.00358461, -0.00343249),
        (-0.00285723, -0.01161195, -0.00853965, 0.04435647, 0.01486305, -0.01977507, -0.00640815),
        (-0.00182078, -0.03930573, 0.05394139, 0.09454202, -0.04819057, -0.04084211, -0.00073141),
        (-0.01124321, 0.00228219, 0.1222723, 0.0, -0.1222723, -0.00228219, 0.01124321),
        (0.00073141, 0.04084211, 0.04819057, -0.09454202, -0.05394139, 0.03930573, 0.00182078),
        (0.00640815, 0.01977507, -0.01486305, -0.04435647, 0.00853965, 0.01161195, 0.00285723),
        (0.00343249, 0.00358461, -0.01047717, -0.00790407, -0.00459034, 0.00128, 0.01166982),
    ),
)


SPYR_FILTER_SIZE = 9
"""Size of ``lofilt``: ``buildSpyr`` builds level l only if the image is at least this large
after l - 1 halvings (``maxPyrHt``)."""


def sp5_filters(
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """``sp5Filters``: ``lo0`` (5,5), ``lo`` (9,9) and ``bands`` (6,7,7) as tensors."""
    t = functools.partial(torch.tensor, dtype=dtype, device=device)
    return {"lo0": t(_SP5_LO0), "lo": 2.0 * t(_SP5_LO_HALF), "bands": t(_SP5_BANDS)}


def max_spyr_height(rows: int, cols: int) -> int:
    """matlabPyrTools ``maxPyrHt([rows cols], 9)``: levels whose input is still >= 9x9."""
    height = 0
    while min(rows, cols) >= SPYR_FILTER_SIZE:
        height, rows, cols = height + 1, rows // 2, cols // 2
    return height


def corr_dn_reflect1(x: torch.Tensor, filt: torch.Tensor, *, step: int = 1, start: int = 0) -> torch.Tensor:
    """matlabPyrTools ``corrDn(x, filt, 'reflect1', [step step], [start start] + 1)`` for odd
    square filters: correlation (not convolution) with the image mirrored about its edge
    samples (edge not repeated, torch's ``'reflect'``), kept at rows/columns
    ``start, start + step, ...`` (0-based) of the full-size result.

    x: (N, C, H, W); filt: (k, k) applied to every channel, or (C_out, k, k) for one
    input channel -> (N, C or C_out, h, w). Float64 input is filtered through the FFT of the
    padded image (exact to float64 rounding; torch's float64 CPU convolution is ~10x slower
    at 1080p), other dtypes by ``conv2d``.
    """
    k = filt.shape[-1]
    a = k // 2
    xp = F.pad(x, (a, a, a, a), mode="reflect")
    if x.dtype == torch.float64:
        size = xp.shape[-2:]
        kern = filt.flip(-2, -1)  # correlation = convolution with the flipped filter
        img_f, kern_f = torch.fft.rfft2(xp, s=size), torch.fft.rfft2(kern, s=size)
        spec = img_f[:, :1] * kern_f[None] if filt.dim() == 3 else img_f * kern_f
        full = torch.fft.irfft2(spec, s=size)[..., k - 1 :, k - 1 :]  # the 'valid' part: no wrap-around
        return full[..., start::step, start::step]
    xp = xp[..., start:, start:]
    if filt.dim() == 3:
        return F.conv2d(xp, filt.unsqueeze(1), stride=step)
    c = x.shape[1]
    return F.conv2d(xp, filt.expand(c, 1, k, k), stride=step, groups=c)


def spyr_bands(x: torch.Tensor, height: int, bands: tuple[int, ...] | None = None) -> list[torch.Tensor]:
    """Oriented bands of ``buildSpyr(x, height, 'sp5Filters', 'reflect1')``, finest level first.

    x: (N, 1, H, W) real; ``bands``: which of the 6 orientations (0-based) to return (all by
    default) -> ``height`` tensors (N, len(bands), h_l, w_l), h_1 = H, h_{l+1} = ceil(h_l / 2).
    The high-pass residual and the final low-pass are not returned.
    """
    rows, cols = x.shape[-2:]
    if height > max_spyr_height(rows, cols):
        raise ValueError(
            f"buildSpyr: cannot build {height} levels on {cols}x{rows} (max {max_spyr_height(rows, cols)})"
        )
    f = sp5_filters(x.dtype, x.device)
    bfilts = f["bands"] if bands is None else f["bands"][list(bands)]
    lo = corr_dn_reflect1(x, f["lo0"])
    out = []
    for level in range(height):
        out.append(corr_dn_reflect1(lo, bfilts))
        if level + 1 < height:
            lo = corr_dn_reflect1(lo, f["lo"], step=2)
    return out

"""SSIM and MS-SSIM, reproducing Wang et al.'s MATLAB reference code, batched in torch.

Why this file is long: SSIM, its no-downsample variant and MS-SSIM share the MATLAB gray,
the window and the map functions; the engine's shared-input hooks sit on the same classes.

* :func:`ssim` follows ``ssim.m`` ("SSIM Index with automatic downsampling", Z. Wang 2009):
  grayscale as MATLAB ``rgb2gray`` on a 0..255 scale, downsampling by
  ``f = max(1, round(min(H, W) / 256))`` with an f x f box filter ('symmetric' borders)
  and keeping every f-th sample, an 11x11 gaussian window (sigma 1.5) with 'valid'
  filtering, K1 = 0.01, K2 = 0.03, L = 255, and the mean of the SSIM map.
  Registered twice: ``ssim`` (with the downsampling, as ``ssim.m`` and the SSIM paper) and
  ``ssim_nodownsample`` (without it: ``ssim_index.m``, the convention of pyiqa's ``ssim``,
  scikit-image with Wang's settings and most papers' tables; docs/metrics.md).
* :func:`ms_ssim` follows ``msssim.m`` (Wang, Simoncelli, Bovik 2003): 5 scales with weights
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average downsampling between scales,
  mean contrast-structure at scales 1..4 and the mean SSIM at scale 5, combined as a
  weighted product. No automatic downsampling (msssim.m has none).

Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from error
visibility to structural similarity", IEEE TIP 13(4), 2004.
Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multi-scale structural similarity for image quality
assessment", Asilomar 2003.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from qualitas.errors import DependencyError, MediaError
from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.filters import box_downsample, gaussian_kernel1d, matlab_round, separable_filter2d
from qualitas.metrics.base import METRICS, Metric, MetricInfo, no_grad

if TYPE_CHECKING:  # annotations only: torch is imported in the functions that use it
    import torch

WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03
L = 255.0
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _to_gray255(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,3,H,W) in [0,1] (or (B,1,H,W) gray) -> (B,1,H,W) gray on the 0..255 scale."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected (B,3,H,W) or (B,1,H,W), got {tuple(x.shape)}")
    x = x.to(dtype)
    return rgb_to_gray_matlab(x, scale=L) if x.shape[1] == 3 else x * L


def ssim_downsample_factor(height: int, width: int) -> int:
    """ssim.m's automatic downsampling factor max(1, round(min(H, W) / 256))."""
    return max(1, matlab_round(min(height, width) / 256.0))


def ssim_maps(
    x: torch.Tensor,
    y: torch.Tensor,
    window: torch.Tensor,
    c1: float = (K1 * L) ** 2,
    c2: float = (K2 * L) ** 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps of gray images x, y (B,1,H,W) -> two (B,1,H-k+1,W-k+1).

    The five local moments come from one grouped, separable convolution ('valid').
    """
    import torch

    xs, ys = x[:, 0], y[:, 0]
    # Stacked channels-last (B,H,W,5 in memory): oneDNN's depthwise convolution is several
    # times faster on CPU in this layout than on (B,5,H,W); cuDNN handles it as well.
    stack = torch.empty(*xs.shape, 5, dtype=x.dtype, device=x.device)
    stack[..., 0] = xs
    stack[..., 1] = ys
    torch.mul(xs, xs, out=stack[..., 2])
    torch.mul(ys, ys, out=stack[..., 3])
    torch.mul(xs, ys, out=stack[..., 4])
    mu_x, mu_y, e_xx, e_yy, e_xy = separable_filter2d(stack.permute(0, 3, 1, 2), window).unbind(dim=1)
    # In-place arithmetic: large temporaries cost more than the maths on CPU.
    mu_xy = mu_x * mu_y
    mu_sq = mu_x.square().add_(mu_y.square())  # mu_x^2 + mu_y^2
    var_sum = (e_xx + e_yy).sub_(mu_sq).add_(c2)  # var_x + var_y + C2
    cs = (e_xy - mu_xy).mul_(2.0).add_(c2).div_(var_sum)  # (2 cov + C2) / (var_x + var_y + C2)
    lum = mu_xy.mul_(2.0).add_(c1).div_(mu_sq.add_(c1))  # (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    return lum.mul_(cs).unsqueeze(1), cs.unsqueeze(1)


TILE_PIXELS = 12 * 1920 * 4
"""CPU tile size (output pixels per filtering step) for :func:`ssim_means`: 12 rows of 4
1080p frames, or up to 64 rows of narrow maps. A step's moments (~3 MB) stay in the cache
between the two filter passes and the SSIM arithmetic, and each step is large enough that
the fixed cost of a torch call stays small next to its work."""
TILE_GROUP = 4
"""Tiles (of any images of the batch) filtered together, as 4 x 4 = 16 channels of one
depthwise convolution: oneDNN's kernel uses the SIMD lanes better with more channels
(measured 2x faster per pixel with 16 channels than with 4)."""


def _ssim_cs_sums(mom: torch.Tensor, c1: float, c2: float, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of the SSIM and CS maps from moments (P, 4, h, w) (mu_x, mu_y, E[xy], E[x^2+y^2]) -> two (P,) float64."""
    import torch

    mu_x, mu_y, e_xy, e_sq = mom.unbind(dim=1)
    mu_xy = mu_x * mu_y
    if grad:
        mu_sq = mu_x.square() + mu_y.square()
        cs = (2.0 * (e_xy - mu_xy) + c2) / (e_sq - mu_sq + c2)
        lum_cs = (2.0 * mu_xy + c1) / (mu_sq + c1) * cs
    else:  # in place on the tile's own maps: no further temporaries
        mu_sq = mu_x.square_().add_(mu_y.square_())  # mu_x^2 + mu_y^2
        var_sum = e_sq.sub_(mu_sq).add_(c2)  # var_x + var_y + C2
        cs = e_xy.sub_(mu_xy).mul_(2.0).add_(c2).div_(var_sum)  # (2 cov + C2) / (var_x + var_y + C2)
        lum = mu_xy.mul_(2.0).add_(c1).div_(mu_sq.add_(c1))  # (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
        lum_cs = lum.mul_(cs)
    return lum_cs.sum(dim=(1, 2), dtype=torch.float64), cs.sum(dim=(1, 2), dtype=torch.float64)


def _band_matrix(window: torch.Tensor, rows: int) -> torch.Tensor:
    """(rows, rows + k - 1) matrix whose product with k-1 more rows is the 'valid' correlation
    with ``window`` (k,) along the rows: row i holds the window at columns i .. i+k-1."""
    import torch

    k = window.numel()
    band = torch.zeros(rows, rows + k - 1, dtype=window.dtype, device=window.device)
    for i in range(rows):
        band[i, i : i + k] = window
    return band


def _ssim_means_tiled(
    xs: torch.Tensor, ys: torch.Tensor, window: torch.Tensor, c1: float, c2: float, tile_rows: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU, no-grad :func:`ssim_means` of gray (B,H,W) x2 -> sums of the SSIM and CS maps, (B,) float64 each.

    The 'valid' output is cut into tiles of ``rows`` output rows of one image; tiles of equal
    height are processed :data:`TILE_GROUP` at a time. Per group: the four moment planes
    (x, y, xy, x^2+y^2) of each tile's ``rows + k - 1`` input rows, as channels (C, n, W);
    the vertical pass as a batched product with a band matrix (BLAS: ~2.4x the multiply-adds
    of the taps, still faster than any convolution here), the horizontal pass as a depthwise
    1 x k convolution on the contiguous result (oneDNN, 5x faster than shifted adds), and
    the SSIM arithmetic in place. No layout copies anywhere.
    """
    import torch
    import torch.nn.functional as F

    b, h, w = xs.shape
    k = window.numel()
    out_h, out_w = h - k + 1, w - k + 1
    rows = tile_rows or TILE_PIXELS // (out_w * TILE_GROUP)
    rows = max(1, min(out_h, rows, 64))
    band = _band_matrix(window, rows)
    # Tiles (image, first output row), grouped by height (only each image's last tile may be shorter).
    by_height: dict[int, list[tuple[int, int]]] = {}
    for i in range(b):
        for r0 in range(0, out_h, rows):
            by_height.setdefault(min(rows, out_h - r0), []).append((i, r0))
    kern = window.view(1, 1, 1, k).expand(4 * TILE_GROUP, 1, 1, k)
    planes = torch.empty(TILE_GROUP, 4, rows + k - 1, w, dtype=xs.dtype)
    sum_ssim = torch.zeros(b, dtype=torch.float64)
    sum_cs = torch.zeros(b, dtype=torch.float64)
    for n_out, tiles in by_height.items():
        n = n_out + k - 1
        for g0 in range(0, len(tiles), TILE_GROUP):
            group = tiles[g0 : g0 + TILE_GROUP]
            g, c = len(group), 4 * len(group)
            p = planes[:g, :, :n]  # contiguous only when n is the full tile height
            if n != rows + k - 1:
                p = torch.empty(g, 4, n, w, dtype=xs.dtype)
            for j, (i, r0) in enumerate(group):
                xr, yr = xs[i, r0 : r0 + n], ys[i, r0 : r0 + n]
                p[j, 0] = xr
                p[j, 1] = yr
                torch.mul(xr, yr, out=p[j, 2])
                torch.mul(xr, xr, out=p[j, 3]).addcmul_(yr, yr)
            vert = torch.matmul(band[:n_out, :n], p.view(c, n, w))  # (c, n_out, W)
            mom = F.conv2d(vert.unsqueeze(0), kern[:c], groups=c)[0]  # (c, n_out, out_w)
            s_sum, c_sum = _ssim_cs_sums(mom.view(g, 4, n_out, out_w), c1, c2, grad=False)
            idx = torch.tensor([i for i, _ in group])
            sum_ssim.index_add_(0, idx, s_sum)
            sum_cs.index_add_(0, idx, c_sum)
    return sum_ssim, sum_cs


COMPILE_ENV = "QUALITAS_COMPILE"
"""Environment variable: set to 1 to run the CPU SSIM kernel through ``torch.compile`` (opt-in;
see :func:`compile_enabled`)."""
COMPILED_TILE_ROWS = 32
_compiled: dict[str, Any] = {}
_compiled_lock = threading.Lock()


def compile_enabled() -> bool:
    """Whether ``QUALITAS_COMPILE`` asks for the compiled CPU SSIM kernel (off by default).

    The kernel (:func:`_fused_tile_sums`, one fused loop per tile from moments to SSIM sums,
    generated by TorchInductor) is ~2.3x faster than the eager tiles on CPU, but needs a C++
    compiler at run time and costs its compilation once per process: ~5 s with Inductor's
    on-disk cache warm, 15-40 s cold on the development machine (docs/benchmarks.md). It
    pays off for long videos or many files in one process.
    """
    return os.environ.get(COMPILE_ENV, "").strip() not in ("", "0")


def _fused_tile_sums(
    xs: torch.Tensor, ys: torch.Tensor, taps: tuple[float, ...], c1: float, c2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of the SSIM and CS maps of gray tiles (g, n, W) x2 -> two (g,) float64 ('valid' output).

    Written as plain shifted multiply-adds so that ``torch.compile`` fuses moments, both
    filter passes and the SSIM arithmetic into one loop nest (eager would be slow this way).
    """
    import torch

    k = len(taps)
    n, w = xs.shape[-2:]
    out_h, out_w = n - k + 1, w - k + 1
    filtered = []
    for plane in (xs, ys, xs * ys, xs * xs + ys * ys):
        vert = plane[:, 0:out_h] * taps[0]
        for j in range(1, k):
            vert = vert + plane[:, j : j + out_h] * taps[j]
        mom = vert[..., 0:out_w] * taps[0]
        for j in range(1, k):
            mom = mom + vert[..., j : j + out_w] * taps[j]
        filtered.append(mom)
    mu_x, mu_y, e_xy, e_sq = filtered
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x + mu_y * mu_y
    cs = (2.0 * (e_xy - mu_xy) + c2) / (e_sq - mu_sq + c2)
    lum_cs = (2.0 * mu_xy + c1) / (mu_sq + c1) * cs
    return lum_cs.sum(dim=(1, 2), dtype=torch.float64), cs.sum(dim=(1, 2), dtype=torch.float64)


def _ssim_means_compiled(
    xs: torch.Tensor, ys: torch.Tensor, window: torch.Tensor, c1: float, c2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_ssim_means_tiled` through the compiled :func:`_fused_tile_sums` (tiles of
    :data:`COMPILED_TILE_ROWS` rows of up to 4 images; shapes are dynamic, so one compilation
    serves every size and scale). Calls are serialised: compilation is not thread-safe."""
    import torch

    b, h, w = xs.shape
    k = window.numel()
    out_h = h - k + 1
    taps = tuple(float(v) for v in window)
    sum_ssim = torch.zeros(b, dtype=torch.float64)
    sum_cs = torch.zeros(b, dtype=torch.float64)
    with _compiled_lock:
        fn = _compiled.get("tile")
        if fn is None:
            fn = _compiled["tile"] = torch.compile(_fused_tile_sums, dynamic=True)
        for i0 in range(0, b, TILE_GROUP):
            for r0 in range(0, out_h, COMPILED_TILE_ROWS):
                n = min(COMPILED_TILE_ROWS, out_h - r0) + k - 1
                tile_x = xs[i0 : i0 + TILE_GROUP, r0 : r0 + n]
                tile_y = ys[i0 : i0 + TILE_GROUP, r0 : r0 + n]
                try:
                    s_sum, c_sum = fn(tile_x, tile_y, taps, c1, c2)
                except Exception as err:  # noqa: BLE001 - Inductor's toolchain errors are long and varied
                    if "tile_ok" in _compiled:
                        raise  # compiled before: a real error, not the toolchain
                    raise DependencyError(
                        f"{COMPILE_ENV}=1: torch.compile could not build the SSIM kernel (it needs a "
                        f"working C++ compiler); unset {COMPILE_ENV} to use the eager kernel "
                        f"({type(err).__name__})"
                    ) from err
                _compiled["tile_ok"] = True
                sum_ssim[i0 : i0 + TILE_GROUP] += s_sum
                sum_cs[i0 : i0 + TILE_GROUP] += c_sum
    return sum_ssim, sum_cs


def ssim_means(
    x: torch.Tensor,
    y: torch.Tensor,
    window: torch.Tensor,
    c1: float = (K1 * L) ** 2,
    c2: float = (K2 * L) ** 2,
    tile_rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the SSIM and contrast-structure maps of gray x, y (B,1,H,W) -> two (B,) float64.

    Same values as averaging :func:`ssim_maps` (to float32 rounding), without ever holding a
    full-size map. Only four local moments are filtered: mu_x, mu_y, E[xy] and
    E[x^2 + y^2] (SSIM only uses var_x + var_y). On CPU without gradients the 'valid'
    output is cut into tiles of ``tile_rows`` rows (default: from :data:`TILE_PIXELS`) and
    summed per tile in float64 (:func:`_ssim_means_tiled`; with ``QUALITAS_COMPILE=1``, float32
    and no ``tile_rows``, a compiled kernel: :func:`compile_enabled`); on other devices, or when
    gradients are needed, all images are filtered at once by one grouped convolution.
    """
    import torch
    import torch.nn.functional as F

    xs, ys = x[:, 0], y[:, 0]
    b, h, w = xs.shape
    k = window.numel()
    out_h, out_w = h - k + 1, w - k + 1
    count = out_h * out_w
    grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    kern = window.to(dtype=x.dtype, device=x.device)
    if x.device.type == "cpu" and not grad:
        if compile_enabled() and tile_rows is None and x.dtype == torch.float32:
            sum_ssim, sum_cs = _ssim_means_compiled(xs, ys, kern, c1, c2)
        else:
            sum_ssim, sum_cs = _ssim_means_tiled(xs, ys, kern, c1, c2, tile_rows)
        return sum_ssim / count, sum_cs / count
    parts = [xs, ys, xs * ys, xs * xs + ys * ys]
    c = 4 * b
    planes = torch.stack(parts, dim=1).reshape(1, c, h, w)
    mom = F.conv2d(planes, kern.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    mom = F.conv2d(mom, kern.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    sum_ssim, sum_cs = _ssim_cs_sums(mom.view(b, 4, out_h, out_w), c1, c2, grad)
    return sum_ssim / count, sum_cs / count


def _check_pair(dist: torch.Tensor, ref: torch.Tensor) -> None:
    if dist.shape != ref.shape:
        raise ValueError(f"dist and ref shapes differ: {tuple(dist.shape)} vs {tuple(ref.shape)}")


def ssim(
    dist: torch.Tensor, ref: torch.Tensor, *, downsample: bool = True, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """SSIM of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,) as Wang's ``ssim.m``.

    ``downsample=False`` skips the automatic downsampling (then it is ``ssim_index.m``).
    ``dtype`` is the compute precision (default float32, within 1e-5 of float64; see docs).
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    _check_pair(dist, ref)
    return ssim_gray255(_to_gray255(dist, dtype), _to_gray255(ref, dtype), downsample=downsample)


def ssim_gray255(x: torch.Tensor, y: torch.Tensor, *, downsample: bool = True) -> torch.Tensor:
    """:func:`ssim` of gray images x, y (B,1,H,W) already on the 0..255 scale -> (B,) in x's dtype."""
    _check_pair(x, y)
    h, w = x.shape[-2:]
    f = ssim_downsample_factor(h, w) if downsample else 1
    return ssim_downsampled(box_downsample(x, f), box_downsample(y, f), size=(h, w))


def check_ssim_size(height: int, width: int, size: tuple[int, int] | None = None) -> None:
    """``MediaError`` when a (downsampled) map of ``height`` x ``width`` cannot hold the window;
    ``size`` (H, W) before downsampling, for the message."""
    if min(height, width) < WIN_SIZE:
        h, w = size or (height, width)
        raise MediaError(f"ssim needs images of at least {WIN_SIZE}x{WIN_SIZE} pixels, got {w}x{h}")


def check_ms_ssim_size(height: int, width: int, levels: int = len(MS_SSIM_WEIGHTS)) -> None:
    """``MediaError`` when ``levels`` MS-SSIM scales do not fit a ``height`` x ``width`` image."""
    min_side = ms_ssim_min_side(levels)
    if min(height, width) < min_side:
        raise MediaError(
            f"ms_ssim needs images at least {min_side} pixels on the shorter side ({levels} scales of "
            f"the {WIN_SIZE}x{WIN_SIZE} window; libvmaf's float_ms_ssim refuses them too), got "
            f"{width}x{height}: use ssim for smaller frames"
        )


def ssim_downsampled(x: torch.Tensor, y: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The rest of :func:`ssim_gray255` once both images are downsampled: (B,1,h,w) x2 -> (B,).

    ``size`` (H, W) is the size before downsampling, for the error message.
    """
    _check_pair(x, y)
    check_ssim_size(*x.shape[-2:], size)
    window = gaussian_kernel1d(WIN_SIZE, WIN_SIGMA, dtype=x.dtype, device=x.device)
    return ssim_means(x, y, window)[0].to(x.dtype)


def ms_ssim(
    dist: torch.Tensor,
    ref: torch.Tensor,
    *,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """MS-SSIM of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,) as Wang's ``msssim.m``.

    Needs min(H, W) >= 11 * 2**(scales-1) (176 pixels for the 5 scales of ``weights``),
    like msssim.m and libvmaf's float_ms_ssim; smaller frames raise :class:`MediaError`.
    Fewer scales only by passing fewer ``weights`` explicitly (a non-standard MS-SSIM, e.g.
    ``MS_SSIM_WEIGHTS[:4]`` for >= 88 px; the weights are used as given, not renormalised).
    A negative mean contrast-structure (only for anti-correlated images) is clamped to 0
    where MATLAB would return a complex number. ``dtype``: compute precision (default float32).
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    _check_pair(dist, ref)
    return ms_ssim_gray255(_to_gray255(dist, dtype), _to_gray255(ref, dtype), weights=weights)


def ms_ssim_gray255(
    x: torch.Tensor, y: torch.Tensor, *, weights: tuple[float, ...] = MS_SSIM_WEIGHTS
) -> torch.Tensor:
    """:func:`ms_ssim` of gray images x, y (B,1,H,W) already on the 0..255 scale -> (B,) float64."""
    _check_pair(x, y)
    return ms_ssim_pyramids(
        ms_ssim_pyramid(x, len(weights)), ms_ssim_pyramid(y, len(weights)), weights=weights
    )


def ms_ssim_min_side(levels: int = len(MS_SSIM_WEIGHTS)) -> int:
    """Smallest shorter side MS-SSIM accepts: every one of ``levels`` scales (each half the
    previous, rounded down as msssim.m's and libvmaf's checks do) keeps the 11x11 window."""
    return WIN_SIZE * 2 ** (levels - 1)


def ms_ssim_pyramid(x: torch.Tensor, levels: int = len(MS_SSIM_WEIGHTS)) -> list[torch.Tensor]:
    """msssim.m's scales of one gray image batch (B,1,H,W): ``levels`` maps, each the 2x2
    average (``box_downsample(., 2)``) of the one before. Per image, so a scoring engine can
    build it next to the decoder of each stream."""
    pyramid = [x]
    for _ in range(levels - 1):
        pyramid.append(box_downsample(pyramid[-1], 2))
    return pyramid


def ms_ssim_pyramids(
    xs: list[torch.Tensor], ys: list[torch.Tensor], *, weights: tuple[float, ...] = MS_SSIM_WEIGHTS
) -> torch.Tensor:
    """:func:`ms_ssim_gray255` from the two :func:`ms_ssim_pyramid` -> (B,) float64."""
    import torch

    levels = len(weights)
    if len(xs) != levels or len(ys) != levels:
        raise ValueError(f"expected {levels} scales, got {len(xs)} and {len(ys)}")
    _check_pair(xs[0], ys[0])
    check_ms_ssim_size(*xs[0].shape[-2:], levels)
    window = gaussian_kernel1d(WIN_SIZE, WIN_SIGMA, dtype=xs[0].dtype, device=xs[0].device)
    wts = torch.tensor(weights, dtype=torch.float64, device=xs[0].device)
    values = []
    for level, (x, y) in enumerate(zip(xs, ys)):
        ssim_mean, cs_mean = ssim_means(x, y, window)
        values.append(ssim_mean if level == levels - 1 else cs_mean)
    stacked = torch.stack(values, dim=1).clamp(min=0.0)  # (B, levels)
    return torch.prod(stacked**wts, dim=1)


SHARED_GRAY255 = "gray255_matlab"
"""Name of the prepared input that SSIM and MS-SSIM share: MATLAB rgb2gray on 0..255, float32.
A scoring engine computes it once per batch (``metric.prepare``) for every metric whose
``shared_input`` names it, and calls ``metric.score_prepared`` (same values as ``metric``)."""


class _Gray255Metric(Metric):
    """A metric on MATLAB-gray luma (0..255) with the scoring engine's per-stream hooks:

    * ``prepare(rgb)`` / ``prepare_luma(luma)``: the shared gray of one stream's batch, from
      RGB (``rgb2gray``) or from the normalised Y' of a YUV video (see docs/metrics.md:
      the same gray for neutral chroma);
    * ``refine(gray)``: this metric's own per-stream work on it (SSIM's downsampling,
      MS-SSIM's scales), which an engine may run in the stream's decoding thread;
    * ``score_refined(d, r)``: the pair score from the two refined inputs.

    ``score_prepared(prepare(d), prepare(r))`` == ``self(d, r)`` == ``score_refined`` of the refined.
    """

    shared_input = SHARED_GRAY255

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] -> the shared gray (B,1,H,W) on 0..255."""
        import torch

        with torch.no_grad():
            return _to_gray255(x.to(self.device), torch.float32)

    def prepare_luma(self, luma: torch.Tensor) -> torch.Tensor:
        """Normalised luma Y' (B,1,H,W) in [0,1] -> the shared gray (B,1,H,W) on 0..255."""
        import torch

        if luma.dim() != 4 or luma.shape[1] != 1:
            raise ValueError(f"expected luma (B,1,H,W), got {tuple(luma.shape)}")
        with torch.no_grad():
            return luma.to(self.device, torch.float32) * L

    def refine(self, gray: torch.Tensor) -> Any:
        return gray

    def score_refined(self, x: Any, y: Any) -> torch.Tensor:
        raise NotImplementedError

    @no_grad
    def score_prepared(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Score from :meth:`prepare` outputs: same values as ``self(dist_rgb, ref_rgb)``."""
        _check_pair(dist, ref)
        return self.score_refined(self.refine(dist), self.refine(ref))

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        if ref is None:
            raise ValueError(f"{self.info.name} is a full-reference metric and needs a reference")
        _check_pair(dist, ref)
        return self.score_prepared(self.prepare(dist), self.prepare(ref))


@METRICS.register("ssim")
class SSIM(_Gray255Metric):
    info = MetricInfo(
        name="ssim",
        full_reference=True,
        higher_is_better=True,
        range=(-1.0, 1.0),
        input="RGB frames; computed on MATLAB rgb2gray luma, downsampled by round(min(H,W)/256)",
        reference="Wang et al. ssim.m (2009, automatic downsampling); within 0.5% (measured < 1e-5)",
    )

    @no_grad
    def refine(self, gray: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """ssim.m's automatic downsampling of one stream's gray -> (downsampled, (H, W) before)."""
        h, w = gray.shape[-2:]
        return box_downsample(gray, ssim_downsample_factor(h, w)), (int(h), int(w))

    @no_grad
    def score_refined(self, x: tuple, y: tuple) -> torch.Tensor:
        if x[1] != y[1]:
            raise ValueError(f"dist and ref sizes differ: {x[1]} vs {y[1]}")
        return ssim_downsampled(x[0], y[0], size=x[1])


@METRICS.register("ssim_nodownsample")
class SSIMNoDownsample(SSIM):
    """SSIM without ssim.m's automatic downsampling (``ssim_index.m``): the value pyiqa's
    ``ssim`` and scikit-image with Wang's settings compute; see docs/metrics.md."""

    info = MetricInfo(
        name="ssim_nodownsample",
        full_reference=True,
        higher_is_better=True,
        range=(-1.0, 1.0),
        input="RGB frames; computed on MATLAB rgb2gray luma at full resolution (no downsampling)",
        reference="Wang et al. ssim_index.m (= ssim.m where its factor is 1; Octave values to 1e-4 rel.); "
        "scikit-image with Wang's settings to 1e-5 rel. (measured 2e-7)",
    )

    @no_grad
    def refine(self, gray: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """No per-stream work: the gray itself, and its size for the error message."""
        h, w = gray.shape[-2:]
        return gray, (int(h), int(w))


@METRICS.register("ms_ssim")
class MSSSIM(_Gray255Metric):
    info = MetricInfo(
        name="ms_ssim",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, 1.0),
        input="RGB frames, at least 176 px on the shorter side; computed on MATLAB rgb2gray luma",
        reference="Wang et al. msssim.m (2003, 5 scales, published weights); within 0.5% (measured < 1e-5)",
    )

    @no_grad
    def refine(self, gray: torch.Tensor) -> list[torch.Tensor]:
        """The five msssim.m scales of one stream's gray."""
        return ms_ssim_pyramid(gray)

    @no_grad
    def score_refined(self, x: list[torch.Tensor], y: list[torch.Tensor]) -> torch.Tensor:
        return ms_ssim_pyramids(x, y)

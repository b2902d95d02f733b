"""SSIM and MS-SSIM, reproducing Wang et al.'s MATLAB reference code, batched in torch.

* :func:`ssim` follows ``ssim.m`` ("SSIM Index with automatic downsampling", Z. Wang 2009):
  grayscale as MATLAB ``rgb2gray`` on a 0..255 scale, downsampling by
  ``f = max(1, round(min(H, W) / 256))`` with an f x f box filter ('symmetric' borders)
  and keeping every f-th sample, an 11x11 gaussian window (sigma 1.5) with 'valid'
  filtering, K1 = 0.01, K2 = 0.03, L = 255, and the mean of the SSIM map.
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

import torch

from qualitas.errors import MediaError
from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.filters import box_downsample, gaussian_kernel1d, matlab_round, separable_filter2d
from qualitas.metrics.base import METRICS, Metric, MetricInfo

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
    x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float = (K1 * L) ** 2, c2: float = (K2 * L) ** 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps of gray images x, y (B,1,H,W) -> two (B,1,H-k+1,W-k+1).

    The five local moments come from one grouped, separable convolution ('valid').
    """
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


def _check_pair(dist: torch.Tensor, ref: torch.Tensor) -> None:
    if dist.shape != ref.shape:
        raise ValueError(f"dist and ref shapes differ: {tuple(dist.shape)} vs {tuple(ref.shape)}")


def ssim(
    dist: torch.Tensor, ref: torch.Tensor, *, downsample: bool = True, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """SSIM of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,) as Wang's ``ssim.m``.

    ``downsample=False`` skips the automatic downsampling (then it is ``ssim_index.m``).
    ``dtype`` is the compute precision (float32 is within 1e-5 of float64; see docs).
    """
    _check_pair(dist, ref)
    x = _to_gray255(dist, dtype)
    y = _to_gray255(ref, dtype)
    h, w = x.shape[-2:]
    f = ssim_downsample_factor(h, w) if downsample else 1
    x = box_downsample(x, f)
    y = box_downsample(y, f)
    if min(x.shape[-2:]) < WIN_SIZE:
        raise MediaError(f"ssim needs images of at least {WIN_SIZE}x{WIN_SIZE} pixels, got {w}x{h}")
    window = gaussian_kernel1d(WIN_SIZE, WIN_SIGMA, dtype=dtype, device=x.device)
    ssim_map, _ = ssim_maps(x, y, window)
    return ssim_map.flatten(1).mean(dim=1)


def ms_ssim(
    dist: torch.Tensor,
    ref: torch.Tensor,
    *,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """MS-SSIM of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,) as Wang's ``msssim.m``.

    Needs min(H, W) >= 11 * 2**(scales-1) (176 pixels for 5 scales), like msssim.m.
    A negative mean contrast-structure (only for anti-correlated images) is clamped to 0
    where MATLAB would return a complex number.
    """
    _check_pair(dist, ref)
    x = _to_gray255(dist, dtype)
    y = _to_gray255(ref, dtype)
    h, w = x.shape[-2:]
    levels = len(weights)
    min_side = WIN_SIZE * 2 ** (levels - 1)
    if min(h, w) < min_side:
        raise MediaError(
            f"ms_ssim needs images at least {min_side} pixels on the shorter side ({levels} scales), got {w}x{h}"
        )
    window = gaussian_kernel1d(WIN_SIZE, WIN_SIGMA, dtype=dtype, device=x.device)
    wts = torch.tensor(weights, dtype=torch.float64, device=x.device)
    values = []
    for level in range(levels):
        ssim_map, cs_map = ssim_maps(x, y, window)
        last = level == levels - 1
        values.append((ssim_map if last else cs_map).flatten(1).mean(dim=1).to(torch.float64))
        if not last:
            x = box_downsample(x, 2)
            y = box_downsample(y, 2)
    stacked = torch.stack(values, dim=1).clamp(min=0.0)  # (B, levels)
    return torch.prod(stacked**wts, dim=1)


@METRICS.register("ssim")
class SSIM(Metric):
    info = MetricInfo(
        name="ssim",
        full_reference=True,
        higher_is_better=True,
        range=(-1.0, 1.0),
        input="RGB frames; computed on MATLAB rgb2gray luma, downsampled by round(min(H,W)/256)",
        reference="Wang et al. ssim.m (2009, automatic downsampling); within 0.5% (measured < 1e-5)",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return ssim(dist, ref)


@METRICS.register("ms_ssim")
class MSSSIM(Metric):
    info = MetricInfo(
        name="ms_ssim",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, 1.0),
        input="RGB frames, at least 176 px on the shorter side; computed on MATLAB rgb2gray luma",
        reference="Wang et al. msssim.m (2003, 5 scales, published weights); within 0.5% (measured < 1e-5)",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return ms_ssim(dist, ref)

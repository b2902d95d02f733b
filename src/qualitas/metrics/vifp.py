"""VIFp, visual information fidelity, pixel-domain multiscale version (Sheikh & Bovik 2006).

The simplified derivative of VIF, registered as ``vifp`` (piq's ``vif_p``); ``vif`` is the
wavelet-domain original (:mod:`qualitas.metrics.vif`). Reproduces LIVE's ``vifp_mscale.m``
(the pixel-domain, scalar-GSM derivative released with the paper): grayscale (MATLAB
``rgb2gray`` weights, 0..255), four scales with gaussian windows of N = 17, 9, 5, 3 taps
(sigma N/5) and 'valid' filtering, the window applied once more before decimating by 2
between scales, sigma_n^2 = 2, and the ratio of the summed information terms (log10) over
all scales.

H. R. Sheikh, A. C. Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006.
"""

from __future__ import annotations

import torch

from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.filters import gaussian_kernel1d, separable_filter2d
from qualitas.functional.fr_filters import check_pair
from qualitas.metrics.base import METRICS, Metric, MetricInfo

SIGMA_NSQ = 2.0
EPS = 1e-10
WINDOWS = (17, 9, 5, 3)


def _min_size() -> int:
    """Smallest side for which every scale keeps at least one 'valid' sample."""
    n = 1
    while True:
        size, ok = n, True
        for scale, win in enumerate(WINDOWS):
            if scale > 0:
                size = (size - win + 1 + 1) // 2  # filter 'valid', keep every 2nd sample
            if size - win + 1 < 1:
                ok = False
                break
        if ok:
            return n
        n += 1


MIN_SIZE = _min_size()  # 41


def vifp(dist: torch.Tensor, ref: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel-domain VIF (VIFp) of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,).

    1 for identical images (unless the reference is flat), larger than 1 for contrast
    enhancement, towards 0 as information is lost.
    """
    check_pair(dist, ref, name="vifp", min_size=MIN_SIZE)
    x = rgb_to_gray_matlab(ref.to(dtype)) * 255.0
    y = rgb_to_gray_matlab(dist.to(dtype)) * 255.0
    num = torch.zeros(x.shape[0], dtype=dtype, device=x.device)
    den = torch.zeros_like(num)
    for scale, n in enumerate(WINDOWS):
        win = gaussian_kernel1d(n, n / 5.0, dtype=dtype, device=x.device)
        if scale > 0:
            xy = separable_filter2d(torch.cat([x, y], dim=1), win)[..., ::2, ::2]
            x, y = xy[:, :1], xy[:, 1:]
        stats = separable_filter2d(torch.cat([x, y, x * x, y * y, x * y], dim=1), win)
        mu1, mu2, e11, e22, e12 = stats.unbind(dim=1)
        s1 = (e11 - mu1 * mu1).clamp_min(0)
        s2 = (e22 - mu2 * mu2).clamp_min(0)
        s12 = e12 - mu1 * mu2
        # The reference's sequence of special cases, in its order.
        g = s12 / (s1 + EPS)
        sv = s2 - g * s12
        flat1 = s1 < EPS
        g = torch.where(flat1, 0.0, g)
        sv = torch.where(flat1, s2, sv)
        s1 = torch.where(flat1, 0.0, s1)
        flat2 = s2 < EPS
        g = torch.where(flat2, 0.0, g)
        sv = torch.where(flat2, 0.0, sv)
        neg = g < 0
        sv = torch.where(neg, s2, sv)
        g = g.clamp_min(0)
        sv = sv.clamp_min(EPS)
        num += torch.log10(1 + g * g * s1 / (sv + SIGMA_NSQ)).flatten(1).sum(dim=1)
        den += torch.log10(1 + s1 / SIGMA_NSQ).flatten(1).sum(dim=1)
    return (num / den).float()


@METRICS.register("vifp")
class VIFP(Metric):
    """Pixel-domain multiscale VIF (higher is better); see :func:`vifp`."""

    info = MetricInfo(
        name="vifp",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, float("inf")),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}; computed on MATLAB rgb2gray luma",
        reference="vifp_mscale.m (LIVE, Sheikh & Bovik) run in GNU Octave; tested to 1e-4 relative",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return vifp(dist, ref)

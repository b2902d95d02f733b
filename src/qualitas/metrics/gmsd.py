"""GMSD, gradient magnitude similarity deviation (Xue, Zhang, Mou, Bovik 2014).

Reproduces the authors' ``GMSD.m``: grayscale (MATLAB ``rgb2gray`` weights, 0..255),
2x2 average with ``conv2(..., 'same')`` and decimation by 2, Prewitt-like gradients
``[1 0 -1]/3`` with ``conv2 'same'`` (zero borders), similarity with T = 170 and the
standard deviation (N-1 normalisation, MATLAB ``std2``) of the similarity map.

W. Xue, L. Zhang, X. Mou, A. C. Bovik, "Gradient magnitude similarity deviation: a highly
efficient perceptual image quality index", IEEE TIP 23(2), 2014.
"""

from __future__ import annotations

import torch

from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.fr_filters import check_pair, conv2_same, conv2_same_decimate
from qualitas.metrics.base import METRICS, Metric, MetricInfo

T = 170.0
MIN_SIZE = 8
_DX = torch.tensor([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]], dtype=torch.float64) / 3.0


def gradient_magnitude(x: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """sqrt(conv2(x, dx, 'same')^2 + conv2(x, dx', 'same')^2) of (B,1,H,W) x."""
    both = torch.cat([conv2_same(x, dx), conv2_same(x, dx.T)], dim=1)
    return both.square().sum(dim=1, keepdim=True).sqrt()


def gmsd(dist: torch.Tensor, ref: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """GMSD of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,); 0 for identical images,
    larger is worse."""
    check_pair(dist, ref, name="gmsd", min_size=MIN_SIZE)
    x = torch.cat([ref, dist], dim=0).to(dtype)
    y = conv2_same_decimate(rgb_to_gray_matlab(x) * 255.0, 2)
    g = gradient_magnitude(y, _DX.to(dtype))
    g_ref, g_dist = g.chunk(2, dim=0)
    sim = (2.0 * g_ref * g_dist + T) / (g_ref.square() + g_dist.square() + T)
    return sim.flatten(1).std(dim=1, correction=1).float()


@METRICS.register("gmsd")
class GMSD(Metric):
    """GMSD (lower is better) on MATLAB-rgb2gray luma; see :func:`gmsd`."""

    info = MetricInfo(
        name="gmsd",
        full_reference=True,
        higher_is_better=False,
        range=(0.0, 1.0),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}; computed on MATLAB rgb2gray luma",
        reference="GMSD.m (Xue et al. 2014) run in GNU Octave; tested to 1e-4 relative",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return gmsd(dist, ref)

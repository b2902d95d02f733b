"""FSIM and FSIMc, feature similarity (Zhang, Zhang, Mou, Zhang 2011).

Reproduces the authors' ``FeatureSIM.m``: YIQ with the code's coefficients on 0..255,
downsampling by ``F = max(1, round(min(H, W) / 256))`` with ``conv2(..., 'same')`` of an
F x F average and decimation, phase congruency (``phasecong2``, see
:func:`qualitas.functional.loggabor.phase_congruency`), Scharr gradients with
``conv2 'same'``, T1 = 0.85, T2 = 160, and for FSIMc T3 = T4 = 200, lambda = 0.03 with the
real part of the (possibly negative) chroma term raised to lambda, as MATLAB computes it.
Phase congruency runs in float32 (complex64 FFTs; within 4e-7 of float64 per pixel, 3e-8
on the pooled scores), the rest in float64.

L. Zhang, L. Zhang, X. Mou, D. Zhang, "FSIM: a feature similarity index for image quality
assessment", IEEE TIP 20(8), 2011.
"""

from __future__ import annotations

import math

import torch

from qualitas.functional.colorspaces import rgb_to_yiq
from qualitas.functional.filters import matlab_round
from qualitas.functional.fr_filters import check_pair, conv2_same, conv2_same_decimate
from qualitas.functional.loggabor import phase_congruency
from qualitas.metrics.base import METRICS, Metric, MetricInfo

T1, T2, T3, T4, LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03
MIN_SIZE = 8
SCHARR_X = torch.tensor([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]], dtype=torch.float64) / 16.0


def downsample_factor(height: int, width: int) -> int:
    """FeatureSIM.m / VSI.m's ``max(1, round(min(rows, cols) / 256))`` (MATLAB rounding)."""
    return max(1, matlab_round(min(height, width) / 256.0))


def scharr_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of (B,1,H,W) ``x`` with Scharr kernels and ``conv2 'same'``."""
    k = SCHARR_X.to(x.dtype)
    return torch.sqrt(conv2_same(x, k) ** 2 + conv2_same(x, k.T) ** 2)


def real_power(x: torch.Tensor, p: float) -> torch.Tensor:
    """``real(x .^ p)`` as MATLAB: negative bases give |x|^p cos(pi p)."""
    mag = x.abs() ** p
    return torch.where(x < 0, mag * math.cos(math.pi * p), mag)


def _fsim_both(
    dist: torch.Tensor, ref: torch.Tensor, pc_dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    check_pair(dist, ref, name="fsim", min_size=MIN_SIZE)
    b = ref.shape[0]
    f = downsample_factor(*ref.shape[-2:])
    # The box decimation is linear, so it runs first (at input precision, on full-size
    # frames) and the colour transform after, in float64, on the small frames.
    rgb = conv2_same_decimate(torch.cat([ref, dist], dim=0), f)
    yiq = rgb_to_yiq(rgb.to(torch.float64) * 255.0)
    y = yiq[:, :1]
    pc = phase_congruency(y, dtype=pc_dtype).to(torch.float64)
    g = scharr_magnitude(y)
    pc1, pc2 = pc[:b], pc[b:]
    g1, g2 = g[:b], g[b:]
    pc_sim = (2 * pc1 * pc2 + T1) / (pc1**2 + pc2**2 + T1)
    g_sim = (2 * g1 * g2 + T2) / (g1**2 + g2**2 + T2)
    pcm = torch.maximum(pc1, pc2)
    sim = g_sim * pc_sim
    norm = pcm.flatten(1).sum(dim=1)
    fsim_ = (sim * pcm).flatten(1).sum(dim=1) / norm
    i1, i2 = yiq[:b, 1:2], yiq[b:, 1:2]
    q1, q2 = yiq[:b, 2:3], yiq[b:, 2:3]
    i_sim = (2 * i1 * i2 + T3) / (i1**2 + i2**2 + T3)
    q_sim = (2 * q1 * q2 + T4) / (q1**2 + q2**2 + T4)
    fsimc_ = (sim * real_power(i_sim * q_sim, LAMBDA) * pcm).flatten(1).sum(dim=1) / norm
    return fsim_.float(), fsimc_.float()


def fsim(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """FSIM (luma only) of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,); 1 when identical.

    NaN for a flat reference and distorted pair (no phase congruency anywhere), as the
    reference code.
    """
    return _fsim_both(dist, ref)[0]


def fsimc(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """FSIMc (luma + YIQ chroma) of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,)."""
    return _fsim_both(dist, ref)[1]


_REF = "FeatureSIM.m (Zhang et al. 2011) run in GNU Octave; tested to 1e-4 relative"


@METRICS.register("fsim")
class FSIM(Metric):
    """FSIM on YIQ luma (higher is better); see :func:`fsim`."""

    info = MetricInfo(
        name="fsim",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, 1.0),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}; computed on YIQ luma (0.299, 0.587, 0.114)",
        reference=_REF,
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return fsim(dist, ref)


@METRICS.register("fsimc")
class FSIMc(Metric):
    """FSIMc: FSIM with YIQ chroma similarity (higher is better); see :func:`fsimc`."""

    info = MetricInfo(
        name="fsimc",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, 1.0),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}; YIQ luma and chroma",
        reference=_REF,
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return fsimc(dist, ref)

"""VSI, visual saliency-induced index (Zhang, Shen, Li 2014).

Reproduces the authors' ``VSI.m``: SDSP saliency (each channel resized to 256x256 with
MATLAB's antialiased bilinear ``imresize``, VSI's own RGB->Lab, a log-Gabor band-pass,
a centre prior and a warm-colour prior, resized back and ``mat2gray``-normalised), the
LMN opponent space, ``F = max(1, round(min(H, W) / 256))`` downsampling with
``conv2 'same'``, Scharr gradients, and the constants of the release (C1 = 1.27,
C2 = 386, C3 = 130, alpha = 0.4, lambda = 0.02).

L. Zhang, Y. Shen, H. Li, "VSI: a visual saliency-induced index for perceptual image
quality assessment", IEEE TIP 23(10), 2014.
"""

from __future__ import annotations

import torch

from qualitas.functional.colorspaces import rgb_to_lab_vsi, rgb_to_lmn
from qualitas.functional.fr_filters import check_pair, conv2_same_decimate, imresize_dense
from qualitas.functional.loggabor import vsi_log_gabor
from qualitas.metrics.base import METRICS, Metric, MetricInfo
from qualitas.metrics.fsim import downsample_factor, real_power, scharr_magnitude

C_VS, C_GM, C_CHROM = 1.27, 386.0, 130.0
ALPHA, LAMBDA = 0.40, 0.020
SIGMA_F, OMEGA0, SIGMA_D, SIGMA_C = 1.34, 0.0210, 145.0, 0.001
SDSP_SIZE = 256
MIN_SIZE = 8


def _minmax(x: torch.Tensor) -> torch.Tensor:
    """Per-image (x - min) / (max - min) of (B,1,H,W) maps (MATLAB ``mat2gray``)."""
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def sdsp(x: torch.Tensor) -> torch.Tensor:
    """SDSP saliency of RGB (B,3,H,W) on 0..255 -> (B,1,H,W) in [0, 1], in ``x``'s dtype.

    The full-resolution resizes run in ``x``'s precision; the 256x256 core in float64.
    """
    h, w = x.shape[-2:]
    small = imresize_dense(x, (SDSP_SIZE, SDSP_SIZE)).to(torch.float64)
    lab = rgb_to_lab_vsi(small / 255.0)
    lg = vsi_log_gabor(SDSP_SIZE, SDSP_SIZE, OMEGA0, SIGMA_F, device=x.device)
    band = torch.fft.ifft2(torch.fft.fft2(lab) * lg).real
    sf = band.square().sum(dim=1, keepdim=True).sqrt()
    idx = torch.arange(1, SDSP_SIZE + 1, dtype=torch.float64, device=x.device) - SDSP_SIZE / 2
    sd = torch.exp(-(idx[:, None] ** 2 + idx[None, :] ** 2) / SIGMA_D**2)
    ab = _minmax(lab[:, 1:3].flatten(0, 1).unsqueeze(1)).view(-1, 2, SDSP_SIZE, SDSP_SIZE)
    sc = 1 - torch.exp(-ab.square().sum(dim=1, keepdim=True) / SIGMA_C**2)
    return _minmax(imresize_dense((sf * sd * sc).to(x.dtype), (h, w)))


def vsi(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """VSI of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,); 1 when identical.

    Full-resolution steps (resizing, box decimation) run in float32 (the input's
    precision; within 1e-6 of float64 on the test pairs), the rest in float64.
    """
    check_pair(dist, ref, name="vsi", min_size=MIN_SIZE)
    b = ref.shape[0]
    rgb = torch.cat([ref, dist], dim=0).float() * 255.0
    f = downsample_factor(*rgb.shape[-2:])
    sal = conv2_same_decimate(sdsp(rgb), f).to(torch.float64)
    lmn = rgb_to_lmn(conv2_same_decimate(rgb, f).to(torch.float64))
    g = scharr_magnitude(lmn[:, :1])
    s1, s2 = sal[:b], sal[b:]
    g1, g2 = g[:b], g[b:]
    m1, m2 = lmn[:b, 1:2], lmn[b:, 1:2]
    n1, n2 = lmn[:b, 2:3], lmn[b:, 2:3]
    vs_sim = (2 * s1 * s2 + C_VS) / (s1**2 + s2**2 + C_VS)
    g_sim = (2 * g1 * g2 + C_GM) / (g1**2 + g2**2 + C_GM)
    weight = torch.maximum(s1, s2)
    m_sim = (2 * m1 * m2 + C_CHROM) / (m1**2 + m2**2 + C_CHROM)
    n_sim = (2 * n1 * n2 + C_CHROM) / (n1**2 + n2**2 + C_CHROM)
    sim = g_sim**ALPHA * vs_sim * real_power(m_sim * n_sim, LAMBDA) * weight
    return (sim.flatten(1).sum(dim=1) / weight.flatten(1).sum(dim=1)).float()


@METRICS.register("vsi")
class VSI(Metric):
    """VSI (higher is better); see :func:`vsi`."""

    info = MetricInfo(
        name="vsi",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, 1.0),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}",
        reference="VSI.m (Zhang et al. 2014) run in GNU Octave; tested to 1e-4 relative",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return vsi(dist, ref)

"""CW-SSIM, complex wavelet structural similarity (Sampat, Wang, Gupta, Bovik, Markey 2009).

Reproduces ``cwssim_index.m`` called as ``cwssim_index(ref, dist, 4, 8, 0, 0)`` (the
level/orientation setting pyiqa and piq also use): grayscale (MATLAB ``rgb2gray``
weights), the 8 complex oriented bands of level 4 of ``buildSCFpyr``, the local index
``(2|sum c1 c2*| + K) / (sum |c1|^2 + |c2|^2 + K)`` over 7x7 windows ('valid'), K = 0,
pooled with a gaussian weight (sigma = a quarter of the band height) and averaged over
the orientations.

M. P. Sampat, Z. Wang, S. Gupta, A. C. Bovik, M. K. Markey, "Complex wavelet structural
similarity: a new image similarity index", IEEE TIP 18(11), 2009.
"""

from __future__ import annotations

import torch

from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.fr_filters import check_pair, filter2_valid, fspecial_gaussian
from qualitas.functional.steerable import scf_level_bands
from qualitas.metrics.base import METRICS, Metric, MetricInfo

LEVEL, ORIENTATIONS, K, WIN = 4, 8, 0.0, 7
# buildSCFpyr refuses more than floor(log2(min(H, W))) - 2 levels.
MIN_SIZE = 2 ** (LEVEL + 2)


def cw_ssim(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """CW-SSIM of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,); 1 when identical."""
    check_pair(dist, ref, name="cw_ssim", min_size=MIN_SIZE)
    b = ref.shape[0]
    gray = rgb_to_gray_matlab(torch.cat([ref, dist], dim=0).to(torch.float64))[:, 0] * 255.0
    bands = scf_level_bands(gray, LEVEL, ORIENTATIONS)  # (2B, O, h, w) complex
    b1, b2 = bands[:b], bands[b:]
    corr = b1 * b2.conj()
    varr = b1.abs().square() + b2.abs().square()
    h, w = bands.shape[-2:]
    box = torch.full((WIN, WIN), 1.0 / WIN**2, dtype=torch.float64, device=bands.device)
    corr_band = torch.complex(filter2_valid(corr.real, box), filter2_valid(corr.imag, box))
    varr_band = filter2_valid(varr, box)
    cssim = (2 * corr_band.abs() + K) / (varr_band + K)
    weight = fspecial_gaussian((h - WIN + 1, w - WIN + 1), h / 4.0, device=bands.device)
    return (cssim * weight).flatten(2).sum(dim=2).mean(dim=1).float()


@METRICS.register("cw_ssim")
class CWSSIM(Metric):
    """CW-SSIM (higher is better); see :func:`cw_ssim`."""

    info = MetricInfo(
        name="cw_ssim",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, 1.0),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}; computed on MATLAB rgb2gray luma",
        reference="cwssim_index.m (level 4, 8 orientations) + matlabPyrTools, GNU Octave; tested to 1e-4 relative",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return cw_ssim(dist, ref)

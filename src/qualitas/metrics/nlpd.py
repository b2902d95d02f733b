"""NLPD, normalised Laplacian pyramid distance (Laparra, Ballé, Berardino, Simoncelli 2016).

Reproduces the authors' ``NLP_dist.m``: grayscale in [0, 1] (MATLAB ``rgb2gray``
weights), a 6-level Laplacian pyramid with the Burt-Adelson 5-tap filter
(``imfilter 'symmetric'`` before decimation, replicate-padded zero-stuffed upsampling),
divisive normalisation of each level by ``sigma + conv2(|band|, P, 'same')`` with the
published McGill-trained sigmas and filters, and the mean over levels of each level's
root-mean-square difference.

V. Laparra, J. Ballé, A. Berardino, E. P. Simoncelli, "Perceptual image quality
assessment using a normalized Laplacian pyramid", Human Vision and Electronic Imaging 2016.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.fr_filters import check_pair, conv2_same, imfilter_same_separable
from qualitas.metrics.base import METRICS, Metric, MetricInfo

N_LEVELS = 6
MIN_SIZE = 2 ** (N_LEVELS - 1)  # the coarsest level keeps at least one pixel
_F1 = torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05], dtype=torch.float64)
SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)


def _dn_filters() -> list[torch.Tensor]:
    """The six 5x5 normalisation filters of NLP_dist.m (``DN_filts(N).F2``)."""
    z = [[0.0] * 5 for _ in range(5)]

    def cross(up: float, left: float, right: float, down: float, far_right: float = 0.0) -> torch.Tensor:
        f = torch.tensor(z, dtype=torch.float64)
        f[1, 2], f[2, 1], f[2, 3], f[3, 2], f[2, 4] = up, left, right, down, far_right
        return f

    return [
        cross(0.1011, 0.1493, 0.1460, 0.1015, 0.0072),
        cross(0.0757, 0.1986, 0.1846, 0.0837),
        cross(0.0477, 0.2138, 0.2243, 0.0467),
        cross(0.0, 0.2503, 0.2616, 0.0),
        cross(0.0, 0.2598, 0.2552, 0.0),
        cross(0.0, 0.2215, 0.0717, 0.0),
    ]


DN_FILTERS = _dn_filters()


def laplacian_pyramid(x: torch.Tensor, levels: int = N_LEVELS) -> list[torch.Tensor]:
    """``laplacian_pyramid_s`` of NLP_dist.m on (B,1,H,W) -> ``levels`` band maps."""
    # The 5x5 Burt-Adelson kernel is f' * f: filtered as two 1-D passes.
    pyr = []
    j = x
    for _ in range(levels - 1):
        low = imfilter_same_separable(j, _F1, padding="symmetric")[..., ::2, ::2]
        odd_h = 2 * low.shape[-2] - j.shape[-2]
        odd_w = 2 * low.shape[-1] - j.shape[-1]
        # upsample: replicate-pad by 1, zero-stuff x2 (times 4), filter (zero borders), crop.
        padded = F.pad(low, (1, 1, 1, 1), mode="replicate")
        up = torch.zeros(
            *padded.shape[:-2], 2 * padded.shape[-2], 2 * padded.shape[-1], dtype=x.dtype, device=x.device
        )
        up[..., ::2, ::2] = 4 * padded
        up = imfilter_same_separable(up, _F1, padding="zeros")
        r, c = up.shape[-2:]
        up = up[..., 2 : r - 2 - odd_h, 2 : c - 2 - odd_w]
        pyr.append(j - up)
        j = low
    pyr.append(j)
    return pyr


def nlpd(dist: torch.Tensor, ref: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """NLPD of ``dist`` vs ``ref`` (B,3,H,W) in [0,1] -> (B,); 0 when identical, larger is worse."""
    check_pair(dist, ref, name="nlpd", min_size=MIN_SIZE)
    b = ref.shape[0]
    gray = rgb_to_gray_matlab(torch.cat([ref, dist], dim=0).to(dtype))
    total = torch.zeros(b, dtype=dtype, device=gray.device)
    for band, sigma, filt in zip(laplacian_pyramid(gray), SIGMAS, DN_FILTERS):
        norm = band / (sigma + conv2_same(band.abs(), filt.to(dtype)))
        total += (norm[:b] - norm[b:]).square().flatten(1).mean(dim=1).sqrt()
    return (total / N_LEVELS).float()


@METRICS.register("nlpd")
class NLPD(Metric):
    """NLPD (lower is better) on MATLAB-rgb2gray luma; see :func:`nlpd`."""

    info = MetricInfo(
        name="nlpd",
        full_reference=True,
        higher_is_better=False,
        range=(0.0, float("inf")),
        input=f"RGB frames >= {MIN_SIZE}x{MIN_SIZE}; computed on MATLAB rgb2gray luma in [0, 1]",
        reference="NLP_dist.m (Laparra et al. 2016) run in GNU Octave; tested to 1e-4 relative",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return nlpd(dist, ref)

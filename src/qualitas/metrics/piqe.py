"""PIQE: Perception-based Image Quality Evaluator (Venkatanath N et al., NCC 2015), no-reference.

Reproduces MATLAB's ``piqe`` (Image Processing Toolbox, the implementation the authors'
paper is distributed with), vectorised over blocks and images:

1. grayscale (``rgb2gray``), padded at the bottom/right by replication to whole 16x16
   blocks, rounded to 8-bit levels (``round(255 * im2double(I))``);
2. MSCN coefficients (7x7 gaussian, sigma 7/6, replicate padding);
3. per 16x16 block with variance > 0.1 (an "active" block):
   * noticeable-artifact criterion: some run of 6 pixels on one of the four block edges
     has standard deviation < 0.1;
   * noise criterion: ``sigma > 2 * beta`` with ``beta = |sigma - r| / max(sigma, r)`` and
     ``r`` the ratio of the std of the two centre columns to the std of the surround;
   * distortion ``(1 - var)`` if artifacted plus ``var`` if noisy;
4. ``score = 100 * (sum of distortions + 1) / (number of active blocks + 1)``.

The surround of MATLAB's ``centerSurDev`` deletes column 8 and then column 9 *of the
already shortened block*, i.e. original columns 8 and 10 (1-based); that is kept here.
Lower is better, in [0, 100]; a flat image scores 100.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qualitas.functional.nss import mscn
from qualitas.metrics.base import METRICS, Metric, MetricInfo
from qualitas.metrics.niqe import check_input

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


def _sliding_std(x: torch.Tensor, n: int) -> torch.Tensor:
    """Unbiased std of every run of ``n`` samples along the last dim: (..., L) -> (..., L-n+1).

    Two-pass (mean, then squared deviations) like MATLAB's ``std``, with shifted slices:
    much faster than ``unfold(...).std(-1)`` over a 6-long innermost dim.
    """
    m = x.shape[-1] - n + 1
    total = x[..., 0:m].clone()
    for k in range(1, n):
        total += x[..., k : k + m]
    mean = total / n
    ss = (x[..., 0:m] - mean).square()
    for k in range(1, n):
        ss += (x[..., k : k + m] - mean).square()
    return (ss / (n - 1)).sqrt()


def piqe_blocks(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-block PIQE quantities of RGB ``x`` (B,3,H,W) in [0,1], each (B, N) over 16x16 blocks.

    Keys: ``variance`` (of the MSCN block), ``active``, ``artifact``, ``noise`` (bool).
    """
    check_input(x, "piqe", 1)
    x = x.to(torch.float64)
    if x.shape[1] == 3:
        from qualitas.functional.color import rgb_to_gray_matlab

        x = rgb_to_gray_matlab(x)
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % BLOCK, (-w) % BLOCK
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    gray = torch.floor(255.0 * x[:, 0] + 0.5)  # MATLAB round (half away from zero), x >= 0
    m, _ = mscn(gray, padding="replicate")
    b, hh, ww = m.shape
    blocks = m.reshape(b, hh // BLOCK, BLOCK, ww // BLOCK, BLOCK).permute(0, 1, 3, 2, 4)
    blocks = blocks.reshape(b, -1, BLOCK, BLOCK)

    variance = blocks.flatten(-2).var(dim=-1)
    active = variance > ACTIVITY_THRESHOLD

    edges = torch.stack(
        [blocks[..., 0, :], blocks[..., :, -1], blocks[..., -1, :], blocks[..., :, 0]], dim=-2
    )
    seg_std = _sliding_std(edges, SEGMENT)  # (B, N, 4 edges, 11 segments)
    artifact = (seg_std < IMPAIRED_THRESHOLD).flatten(-2).any(dim=-1)

    sigma = variance.sqrt()
    # 0-based: centre = columns 7, 8; the surround drops columns 7 and 9 (see module doc).
    centre_std = blocks[..., 7:9].flatten(-2).std(dim=-1)
    surround = torch.cat([blocks[..., :7], blocks[..., 8:9], blocks[..., 10:]], dim=-1)
    surround_std = surround.flatten(-2).std(dim=-1)
    ratio = centre_std / surround_std
    ratio = torch.where(torch.isnan(ratio), torch.zeros_like(ratio), ratio)
    beta = (sigma - ratio).abs() / torch.maximum(sigma, ratio)
    noise = sigma > 2 * beta
    return {"variance": variance, "active": active, "artifact": artifact & active, "noise": noise & active}


def piqe(x: torch.Tensor) -> torch.Tensor:
    """PIQE of RGB ``x`` (B,3,H,W) in [0,1] -> (B,) float64 in [0, 100]; lower is better."""
    blk = piqe_blocks(x)
    var = blk["variance"]
    dist = blk["artifact"] * (1 - var) + blk["noise"] * var
    return 100.0 * (dist.sum(dim=-1) + 1) / (blk["active"].sum(dim=-1) + 1)


@METRICS.register("piqe")
class PIQE(Metric):
    info = MetricInfo(
        name="piqe",
        full_reference=False,
        higher_is_better=False,
        range=(0.0, 100.0),
        input="RGB frames; computed on MATLAB rgb2gray rounded to 8 bits, 16x16 blocks",
        reference="MATLAB Image Processing Toolbox piqe.m (Venkatanath et al. 2015); within 1% relative",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return piqe(dist)

"""Macroblock grids: block sums, per-frame normalisation, K-bin quantisation, top-k
selection, dilation and pasting of enhanced blocks.

A grid has one value per macroblock of the LOW-resolution frame: ``(..., gh, gw)`` with
``gh = ceil(h / block)``, ``gw = ceil(w / block)``. In the enhanced (upscaled by
``scale``) frame the same block covers ``block * scale`` pixels per side. Partial blocks at
the right/bottom edge are kept (their sums cover the pixels that exist).

Pure tensor maths on the functional floor, so the importance labeller, the importance
losses and the evaluation share one copy (``qualitas.importance.grid`` re-exports it).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from qualitas.errors import UsageError

NORMS = ("max", "sum")


def grid_shape(height: int, width: int, block: int) -> tuple[int, int]:
    """``(gh, gw)`` of a ``height x width`` frame with ``block``-pixel macroblocks."""
    if block < 1:
        raise UsageError(f"block size must be >= 1, got {block}")
    return math.ceil(height / block), math.ceil(width / block)


def block_sum(x: torch.Tensor, block: int) -> torch.Tensor:
    """Sum of ``x (..., H, W)`` over each ``block x block`` tile -> ``(..., ceil(H/b), ceil(W/b))``.

    The frame is zero-padded at the right/bottom so partial edge blocks sum what they cover.
    """
    h, w = x.shape[-2:]
    gh, gw = grid_shape(h, w, block)
    lead = x.shape[:-2]
    x = x.reshape(-1, h, w)
    x = F.pad(x, (0, gw * block - w, 0, gh * block - h))
    x = x.reshape(-1, gh, block, gw, block).sum(dim=(2, 4))
    return x.reshape(*lead, gh, gw)


def normalise(grid: torch.Tensor, norm: str = "max") -> torch.Tensor:
    """Per-frame normalisation of ``(..., gh, gw)`` raw importance (non-negative).

    ``max``: divide by the frame's largest block (values in ``[0, 1]``, the top block is 1);
    ``sum``: divide by the frame's total (values sum to 1). An all-zero frame stays zero.
    """
    if norm not in NORMS:
        raise UsageError(f"unknown normalisation '{norm}'; choose one of {', '.join(NORMS)}")
    flat = grid.flatten(-2)
    den = flat.amax(-1) if norm == "max" else flat.sum(-1)
    den = torch.where(den > 0, den, torch.ones_like(den))
    return grid / den[..., None, None]


def quantise(norm_grid: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Class of each block: ``K`` equal bins of max-normalised importance in ``[0, 1]``.

    ``class = min(floor(v * K), K - 1)``: bin ``i`` holds ``[i/K, (i+1)/K)``, the top bin
    also holds 1.0. Returns ``int64`` classes in ``[0, K-1]``, same shape.
    """
    if k < 2:
        raise UsageError(f"need at least 2 classes, got {k}")
    return (norm_grid.clamp(0, 1) * k).floor().clamp(max=k - 1).long()


def dequantise(classes: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Bin centres ``(c + 0.5) / K`` (a ranking value for class predictions)."""
    return (classes.float() + 0.5) / k


def parse_select(spec: str) -> float:
    """``"top:20%"`` or ``"top:0.2"`` -> fraction of blocks in ``(0, 1]``."""
    m = re.fullmatch(r"top:([0-9]*\.?[0-9]+)(%?)", spec.strip())
    if m is None:
        raise UsageError(f"--select expects top:N% or top:F (a fraction), got '{spec}'")
    value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if not 0.0 < value <= 1.0:
        raise UsageError(f"--select fraction must be in (0, 100%], got '{spec}'")
    return value


def _count(n: int, fraction: float) -> int:
    return max(1, min(n, round(fraction * n)))


def select_topk(grid: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask of the ``round(fraction * n)`` highest blocks of each frame.

    ``grid``: ``(gh, gw)`` or ``(B, gh, gw)``. Ties go to the lower block index (stable).
    """
    flat = grid.reshape(-1, grid.shape[-2] * grid.shape[-1])
    n = flat.shape[1]
    k = _count(n, fraction)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :k]
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True)
    return mask.reshape(grid.shape)


def select_random(
    shape: tuple[int, ...], fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniformly random blocks, the same count per frame as :func:`select_topk`."""
    return select_topk(torch.rand(shape, generator=generator), fraction)


def dilate(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """Grow a block mask ``(..., gh, gw)`` by ``margin`` blocks (8-connected, square)."""
    if margin <= 0:
        return mask
    lead = mask.shape[:-2]
    m = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    m = F.max_pool2d(m, 2 * margin + 1, stride=1, padding=margin)
    return (m > 0).reshape(*lead, *mask.shape[-2:])


def blocks_to_pixels(mask: torch.Tensor, block: int, height: int, width: int) -> torch.Tensor:
    """Block mask ``(..., gh, gw)`` -> pixel mask ``(..., height, width)`` (nearest)."""
    m = mask.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)
    return m[..., :height, :width]


def paste(base: torch.Tensor, enhanced: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """``enhanced`` where ``pixel_mask`` is set, ``base`` elsewhere.

    ``base``/``enhanced``: ``(B, 3, H, W)`` or ``(3, H, W)``; ``pixel_mask``: ``(B, H, W)`` or ``(H, W)``.
    """
    if base.shape != enhanced.shape:
        raise UsageError(f"cannot paste {tuple(enhanced.shape)} into {tuple(base.shape)}")
    return torch.where(pixel_mask.unsqueeze(-3), enhanced, base)

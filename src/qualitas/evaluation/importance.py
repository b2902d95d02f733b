"""Importance predictor evaluation against ground-truth grids, per frame (beside the other
evaluation code; ``qualitas.importance.metrics`` re-exports it).

* ``srocc``: Spearman rank correlation between predicted and true block importance of one
  frame (average ranks for ties; NaN when either grid is constant);
* ``topk_iou``: intersection over union of the predicted and the true top ``fraction`` of
  blocks (:func:`qualitas.functional.blocks.select_topk`).

Class predictions ``(B, K, gh, gw)`` are ranked by their expected bin centre.
"""

from __future__ import annotations

import torch

from qualitas.functional.blocks import select_topk


def grid_scores(pred: torch.Tensor) -> torch.Tensor:
    """Model output -> a ranking value per block ``(B, gh, gw)``."""
    if pred.ndim == 4:  # class logits: expected bin centre
        k = pred.shape[1]
        centres = (torch.arange(k, dtype=pred.dtype, device=pred.device) + 0.5) / k
        return (pred.softmax(1) * centres[None, :, None, None]).sum(1)
    return pred


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks along the last dim (ties share their mean rank)."""
    out = torch.empty_like(x, dtype=torch.float64)
    for i, row in enumerate(x):
        vals, inv, counts = torch.unique(row, return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        out[i] = (ends - (counts.double() - 1) / 2)[inv]
    return out


def spearman_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B, gh, gw)`` x2 -> ``(B,)`` Spearman correlation over blocks."""
    a, b = _ranks(pred.flatten(1).double()), _ranks(target.flatten(1).double())
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    den = (a.square().sum(1) * b.square().sum(1)).sqrt()
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), torch.full_like(den, float("nan")))


def topk_iou(pred: torch.Tensor, target: torch.Tensor, fraction: float = 0.2) -> torch.Tensor:
    """``(B, gh, gw)`` x2 -> ``(B,)`` IoU of the top-``fraction`` block sets."""
    p, t = select_topk(pred, fraction).flatten(1), select_topk(target, fraction).flatten(1)
    return (p & t).sum(1).double() / (p | t).sum(1).double()


def item_figures(pred: torch.Tensor, target: torch.Tensor, fraction: float = 0.2) -> dict[str, torch.Tensor]:
    """Per-frame ``srocc`` and ``topk_iou`` ``(B,)`` of a model output against target grids."""
    s = grid_scores(pred.detach().float()).cpu()
    t = target.detach().float().cpu()
    return {"srocc": spearman_per_frame(s, t), "topk_iou": topk_iou(s, t, fraction)}

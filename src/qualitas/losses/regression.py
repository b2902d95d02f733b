"""Regression losses on scores: ``loss(pred (B,), target (B,)) -> scalar``.

``l1``, ``mse``, ``smooth_l1`` (torch's), and ``l1_rank``: L1 plus a pairwise hinge over
every pair of the batch that teaches the order of the scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qualitas.errors import ConfigError
from qualitas.losses.base import LOSSES, Loss, check_scores


def pairwise_rank_hinge(
    pred: torch.Tensor, target: torch.Tensor, *, margin: float = 0.0, hard_thresh: float = 0.0
) -> torch.Tensor:
    """Mean pairwise hinge over the batch: ``(B,), (B,) -> ()``.

    For every unordered pair ``i < j`` with ``|t_i - t_j| > hard_thresh`` (a *hard pair*:
    pairs whose MOS differ less are treated as ties and ignored):

        h_ij = relu(margin - sign(t_i - t_j) * (p_i - p_j))

    i.e. a pair costs nothing when the predictions are in the MOS order by at least
    ``margin``. The result is ``sum h_ij / #pairs`` (zero when no pair qualifies).
    """
    dp = pred[:, None] - pred[None, :]
    dt = target[:, None] - target[None, :]
    upper = torch.ones_like(dp, dtype=torch.bool).triu(diagonal=1)
    mask = upper & (dt.abs() > hard_thresh)
    hinge = F.relu(margin - torch.sign(dt) * dp)
    count = mask.sum().clamp(min=1)
    return (hinge * mask).sum() / count


@LOSSES.register("l1")
class L1(Loss):
    """Mean absolute error."""

    name = "l1"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_scores(pred, target, self.name)
        return F.l1_loss(pred, target.to(pred.dtype))


@LOSSES.register("mse")
class MSE(Loss):
    """Mean squared error."""

    name = "mse"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_scores(pred, target, self.name)
        return F.mse_loss(pred, target.to(pred.dtype))


@LOSSES.register("smooth_l1")
class SmoothL1(Loss):
    """Huber-like loss: ``0.5 x^2 / beta`` for ``|x| < beta``, else ``|x| - 0.5 beta``; mean."""

    name = "smooth_l1"

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        if beta <= 0:
            raise ConfigError(f"smooth_l1: beta must be > 0, got {beta}")
        self.beta = float(beta)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_scores(pred, target, self.name)
        return F.smooth_l1_loss(pred, target.to(pred.dtype), beta=self.beta)


@LOSSES.register("l1_rank")
class L1Rank(Loss):
    """``mean|p - t| + rank_weight * pairwise_rank_hinge(p, t, margin, hard_thresh)``."""

    name = "l1_rank"

    def __init__(self, margin: float = 0.0, hard_thresh: float = 0.0, rank_weight: float = 1.0) -> None:
        super().__init__()
        if margin < 0 or hard_thresh < 0 or rank_weight < 0:
            raise ConfigError(
                f"l1_rank: margin, hard_thresh and rank_weight must be >= 0, got {margin}, {hard_thresh}, {rank_weight}"
            )
        self.margin = float(margin)
        self.hard_thresh = float(hard_thresh)
        self.rank_weight = float(rank_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_scores(pred, target, self.name)
        target = target.to(pred.dtype)
        rank = pairwise_rank_hinge(pred, target, margin=self.margin, hard_thresh=self.hard_thresh)
        return F.l1_loss(pred, target) + self.rank_weight * rank

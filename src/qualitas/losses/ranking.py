"""Margin ranking over labelled pairs (RankIQA-style pre-training).

``loss(pred_better (B,), pred_worse (B,))``: the first image of each pair is known to be
of higher quality (e.g. the same content with a weaker distortion).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qualitas.errors import ConfigError
from qualitas.losses.base import LOSSES, Loss, check_scores


def margin_ranking_loss(
    pred_better: torch.Tensor, pred_worse: torch.Tensor, margin: float = 0.5
) -> torch.Tensor:
    """``mean_i relu(margin - (better_i - worse_i))``: ``(B,), (B,) -> ()``.

    Same value as ``torch.nn.functional.margin_ranking_loss(better, worse, ones, margin)``.
    """
    return F.relu(margin - (pred_better - pred_worse)).mean()


@LOSSES.register("margin_ranking")
class MarginRanking(Loss):
    """Hinge on labelled pairs; the margin is in model-output units."""

    name = "margin_ranking"
    input_kind = "pair"

    def __init__(self, margin: float = 0.5) -> None:
        super().__init__()
        if margin < 0:
            raise ConfigError(f"margin_ranking: margin must be >= 0, got {margin}")
        self.margin = float(margin)

    def forward(self, pred_better: torch.Tensor, pred_worse: torch.Tensor) -> torch.Tensor:
        check_scores(pred_better, pred_worse, self.name)
        return margin_ranking_loss(pred_better, pred_worse, self.margin)

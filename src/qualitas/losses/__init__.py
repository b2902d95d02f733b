"""Training losses: ``build_loss(spec)`` from config, ``LOSSES`` registry.

Score losses (``l1``, ``mse``, ``smooth_l1``, ``l1_rank``, ``plcc``, ``norm_in_norm``) take
``(pred (B,), target (B,))``; ``emd`` takes distributions ``(B, N)``; ``margin_ranking``
takes ``(pred_better, pred_worse)``. Each loss says which in ``loss.input_kind``.
"""

from __future__ import annotations

# Explicit imports: each module registers its losses.
from qualitas.losses import correlation, distribution, importance, ranking, regression, vision  # noqa: F401
from qualitas.losses.base import INPUT_KINDS, LOSSES, Loss, WeightedSum, build_loss
from qualitas.losses.correlation import norm_in_norm_loss, pearson, plcc_loss
from qualitas.losses.distribution import emd_loss
from qualitas.losses.ranking import margin_ranking_loss
from qualitas.losses.regression import pairwise_rank_hinge

__all__ = [
    "INPUT_KINDS",
    "LOSSES",
    "Loss",
    "WeightedSum",
    "build_loss",
    "emd_loss",
    "margin_ranking_loss",
    "norm_in_norm_loss",
    "pairwise_rank_hinge",
    "pearson",
    "plcc_loss",
]

"""Earth mover's distance between score distributions (NIMA, Talebi & Milanfar 2018).

``loss(pred (B, N), target (B, N))``: predicted probabilities (softmax output) and the
target distributions (vote histograms; rows are normalised to sum to one, so raw counts
are fine).
"""

from __future__ import annotations

import torch

from qualitas.errors import ConfigError
from qualitas.losses.base import LOSSES, Loss


def emd_loss(pred: torch.Tensor, target: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    """NIMA's EMD, averaged over the batch: ``(B, N), (B, N) -> ()``.

    ``EMD(p, t) = ( 1/N * sum_k |CDF_p(k) - CDF_t(k)|^r )^(1/r)`` with
    ``CDF(k) = sum_{i<=k} p_i`` (ordered bins, unit distance between neighbours).
    """
    target = target.to(pred.dtype)
    target = target / target.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    diff = (pred.cumsum(dim=-1) - target.cumsum(dim=-1)).abs()
    # clamp_min keeps the gradient of x**(1/r) finite when a prediction is exact.
    per_item = diff.pow(r).mean(dim=-1).clamp_min(1e-12).pow(1.0 / r)
    return per_item.mean()


@LOSSES.register("emd")
class EMD(Loss):
    """Earth mover's distance over CDFs with exponent ``r`` (NIMA uses ``r=2``)."""

    name = "emd"
    input_kind = "distribution"

    def __init__(self, r: float = 2.0) -> None:
        super().__init__()
        if r < 1:
            raise ConfigError(f"emd: r must be >= 1, got {r}")
        self.r = float(r)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim != 2 or target.shape != pred.shape:
            raise ConfigError(
                f"loss 'emd' expects distributions pred (B,N) and target (B,N), got "
                f"{tuple(pred.shape)} and {tuple(target.shape)} (use head=distribution with "
                "num_bins equal to the vote histogram length)"
            )
        return emd_loss(pred, target, self.r)

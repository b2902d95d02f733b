"""Correlation-style losses on a batch of scores: ``loss(pred (B,), target (B,))``.

They only care about the *linear relation* between predictions and MOS, not the scale:
``plcc`` is ``1 - PLCC``; ``norm_in_norm`` is Li, Jiang & Jiang, "Norm-in-Norm Loss with
Faster Convergence and Better Performance for Image Quality Assessment" (ACM MM 2020),
following the authors' ``norm_loss_with_normalization`` (github.com/lidq92/LinearityIQA).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from qualitas.errors import ConfigError
from qualitas.losses.base import LOSSES, Loss, check_scores

EPS = 1e-8


def pearson(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Differentiable Pearson correlation of two ``(B,)`` tensors -> ``()``."""
    p = pred - pred.mean()
    t = target - target.mean()
    return (p * t).sum() / (p.norm() * t.norm() + eps)


def plcc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - PLCC(pred, target)`` over the batch, in ``[0, 2]``."""
    return 1.0 - pearson(pred, target.to(pred.dtype))


def norm_in_norm_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    p: float = 1.0,
    q: float = 2.0,
    alpha: Sequence[float] = (1.0, 0.0),
) -> torch.Tensor:
    """Norm-in-Norm loss: ``(B,), (B,) -> ()``.

    Both vectors are centred and divided by their ``q``-norm: ``a = (x - mean x) / ||.||_q``,
    ``b`` likewise for the MOS. With ``s = 2^max(1, 1/q) * B^max(0, 1/p - 1/q)``:

        L0 = (||a - b||_p / s)^p          (p = q = 2: L0 = (1 - PLCC) / 2)
        L1 = (||rho a - b||_p / s)^p      (rho = cos(a, b); p = q = 2: L1 = (1 - PLCC^2) / 4)
        L  = (alpha0 L0 + alpha1 L1) / (alpha0 + alpha1)

    Defaults ``p=1, q=2, alpha=(1, 0)`` are the paper's recommended setting. ``rho`` is the
    scalar cosine over the batch (the intended PLCC). A batch of one gives zero.
    """
    n = pred.numel()
    if n < 2:
        return (pred - pred.detach()).sum()  # zero, still attached to the graph
    a = pred - pred.mean()
    a = a / (EPS + a.norm(p=q))
    b = target.to(pred.dtype) - target.mean()
    b = b / (EPS + b.norm(p=q))
    scale = 2.0 ** max(1.0, 1.0 / q) * n ** max(0.0, 1.0 / p - 1.0 / q)
    a0, a1 = float(alpha[0]), float(alpha[1])
    loss = pred.new_zeros(())
    if a0 > 0:
        loss = loss + a0 * ((a - b).norm(p=p) / scale) ** p
    if a1 > 0:
        rho = (a * b).sum() / (a.norm() * b.norm() + EPS)
        loss = loss + a1 * ((rho * a - b).norm(p=p) / scale) ** p
    return loss / (a0 + a1)


@LOSSES.register("plcc")
class PLCCLoss(Loss):
    """``1 - PLCC`` over the batch (scale-free; pair it with l1 to pin the scale)."""

    name = "plcc"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_scores(pred, target, self.name)
        return plcc_loss(pred, target)


@LOSSES.register("norm_in_norm")
class NormInNorm(Loss):
    """Norm-in-Norm loss (Li et al. 2020); see :func:`norm_in_norm_loss`."""

    name = "norm_in_norm"

    def __init__(self, p: float = 1.0, q: float = 2.0, alpha: Sequence[float] = (1.0, 0.0)) -> None:
        super().__init__()
        if p < 1 or q < 1:
            raise ConfigError(f"norm_in_norm: p and q must be >= 1, got p={p}, q={q}")
        if len(alpha) != 2 or min(alpha) < 0 or sum(alpha) <= 0:
            raise ConfigError(f"norm_in_norm: alpha must be two non-negative weights, got {list(alpha)}")
        self.p, self.q, self.alpha = float(p), float(q), (float(alpha[0]), float(alpha[1]))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_scores(pred, target, self.name)
        return norm_in_norm_loss(pred, target, p=self.p, q=self.q, alpha=self.alpha)

"""Losses for the macroblock importance predictor (``qualitas.models.importance``).

Targets are max-normalised importance grids ``(B, gh, gw)`` in ``[0, 1]``:

* ``importance_ce``: weighted cross-entropy of class logits ``(B, K, gh, gw)`` against the
  K equal bins of the target (``qualitas.functional.blocks.quantise``); class weights are
  given, or ``balanced`` (inverse frequency in the batch) so rare important blocks count;
* ``importance_mse``: mean squared error of a regression grid ``(B, gh, gw)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from qualitas.errors import ConfigError
from qualitas.functional.blocks import quantise
from qualitas.losses.base import LOSSES, Loss


def _check(pred: torch.Tensor, target: torch.Tensor, name: str, classes: bool) -> None:
    want = pred.ndim == 4 if classes else pred.ndim == 3
    if not want or pred.shape[0] != target.shape[0] or pred.shape[-2:] != target.shape[-2:]:
        exp = "(B,K,gh,gw)" if classes else "(B,gh,gw)"
        raise ConfigError(
            f"loss '{name}' expects pred {exp} and a target grid (B,gh,gw), got {tuple(pred.shape)} and "
            f"{tuple(target.shape)} (use model 'importance' with num_classes {'K' if classes else '0'})"
        )


def quantise_target(target: torch.Tensor, k: int) -> torch.Tensor:
    """``min(floor(t * K), K - 1)`` as int64: :func:`qualitas.functional.blocks.quantise`."""
    return quantise(target, k)


@LOSSES.register("importance_ce")
class ImportanceCE(Loss):
    """Weighted cross-entropy over the K importance classes of every block."""

    name = "importance_ce"

    def __init__(self, class_weights: Sequence[float] | str | None = "balanced") -> None:
        super().__init__()
        if isinstance(class_weights, str) and class_weights != "balanced":
            raise ConfigError(
                f"importance_ce class_weights: a list, 'balanced' or null, got '{class_weights}'"
            )
        self.class_weights = class_weights

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(pred, target, self.name, classes=True)
        k = pred.shape[1]
        cls = quantise_target(target, k)
        if self.class_weights == "balanced":
            count = torch.bincount(cls.flatten(), minlength=k).float()
            weight = torch.where(count > 0, count.sum() / (k * count.clamp(min=1)), torch.zeros_like(count))
        elif self.class_weights is None:
            weight = None
        else:
            if len(self.class_weights) != k:
                raise ConfigError(f"importance_ce: {len(self.class_weights)} class weights for {k} classes")
            weight = torch.tensor(list(self.class_weights), dtype=pred.dtype, device=pred.device)
        return F.cross_entropy(pred, cls, weight=None if weight is None else weight.to(pred))


@LOSSES.register("importance_mse")
class ImportanceMSE(Loss):
    """Mean squared error of the predicted normalised importance grid."""

    name = "importance_mse"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(pred, target, self.name, classes=False)
        return F.mse_loss(pred, target.to(pred))

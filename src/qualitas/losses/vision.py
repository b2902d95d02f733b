"""Losses of the classification and segmentation tasks (docs/tasks.md), thin wrappers over
``torch.nn.functional`` so they are built from config like every other loss.

* ``cross_entropy``: logits ``(B, K)`` vs class indices ``(B,)``, with ``label_smoothing``
  and optional per-class ``class_weights``;
* ``bce``: multi-label logits ``(B, K)`` vs 0/1 targets ``(B, K)`` (sigmoid per class);
* ``seg_cross_entropy``: logits ``(B, K, H, W)`` vs masks ``(B, H, W)``, pixels equal to
  ``ignore_index`` (255) left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from qualitas.errors import ConfigError
from qualitas.losses.base import LOSSES, Loss


def _weights(class_weights: Sequence[float] | None, pred: torch.Tensor) -> torch.Tensor | None:
    if class_weights is None:
        return None
    w = torch.as_tensor(list(class_weights), dtype=pred.dtype, device=pred.device)
    if w.numel() != pred.shape[1]:
        raise ConfigError(f"loss.class_weights has {w.numel()} entries for {pred.shape[1]} classes")
    return w


def _smoothing(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"loss.label_smoothing must be in [0, 1), got {value}")
    return float(value)


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """Softmax cross-entropy with label smoothing (classification)."""

    name = "cross_entropy"
    input_kind = "logits"

    def __init__(self, label_smoothing: float = 0.0, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.label_smoothing = _smoothing(label_smoothing)
        self.class_weights = class_weights

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim != 2 or target.ndim != 1:
            raise ConfigError(
                f"loss 'cross_entropy' expects logits (B,K) and labels (B,), got {tuple(pred.shape)} and "
                f"{tuple(target.shape)} (multi-label data: use loss bce)"
            )
        return F.cross_entropy(
            pred,
            target.long(),
            weight=_weights(self.class_weights, pred),
            label_smoothing=self.label_smoothing,
        )


@LOSSES.register("bce")
class BinaryCrossEntropy(Loss):
    """Sigmoid binary cross-entropy per class (multi-label classification)."""

    name = "bce"
    input_kind = "logits"

    def __init__(self, pos_weight: Sequence[float] | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.pos_weight = pos_weight
        self.label_smoothing = _smoothing(label_smoothing)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ConfigError(
                f"loss 'bce' expects logits and 0/1 targets of one shape (B,K), got {tuple(pred.shape)} and "
                f"{tuple(target.shape)} (single-label data: use cross_entropy)"
            )
        t = target.float()
        if self.label_smoothing:
            t = t * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(pred, t, pos_weight=_weights(self.pos_weight, pred))


@LOSSES.register("seg_cross_entropy")
class SegCrossEntropy(Loss):
    """Per-pixel cross-entropy; ``ignore_index`` pixels count nowhere."""

    name = "seg_cross_entropy"
    input_kind = "dense_logits"

    def __init__(
        self,
        ignore_index: int = 255,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.label_smoothing = _smoothing(label_smoothing)
        self.class_weights = class_weights

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim != 4 or target.ndim != 3 or pred.shape[-2:] != target.shape[-2:]:
            raise ConfigError(
                f"loss 'seg_cross_entropy' expects logits (B,K,H,W) and masks (B,H,W), got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}"
            )
        return F.cross_entropy(
            pred,
            target.long(),
            weight=_weights(self.class_weights, pred),
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )

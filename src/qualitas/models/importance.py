"""Macroblock importance predictor: timm backbone features -> small head -> one value
(``output="grid"``) or K class logits (``output="grid_classes"``) per macroblock.

Input: the LOW-resolution frame ``(B, 3, H, W)`` in ``[0, 1]`` (what is available before
any enhancement); output ``(B, gh, gw)`` or ``(B, K, gh, gw)`` with
``gh = ceil(H / block)``, ``gw = ceil(W / block)`` (docs/importance.md). The head reads the
deepest backbone stage whose stride is at most ``block`` (plus the last stage, upsampled,
for context) and resamples to the block grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qualitas.errors import ConfigError
from qualitas.models import mtcnn_backbone  # noqa: F401  (registers the mtcnn_pnet backbones)
from qualitas.models.backbones import create_backbone, intermediate_net
from qualitas.models.iqa import Normalize, check_images
from qualitas.models.registry import MODELS, card_kwargs
from qualitas.models.spec import ModelSpec


class ImportancePredictor(nn.Module):
    """``(B, 3, H, W)`` -> ``(B, gh, gw)`` (regression) or ``(B, K, gh, gw)`` (class logits)."""

    def __init__(
        self, backbone: nn.Module, *, block: int, num_classes: int, hidden: int, spec: ModelSpec
    ) -> None:
        super().__init__()
        net = intermediate_net(backbone, spec.backbone)
        info = net.feature_info
        stages = [i for i, f in enumerate(info) if f["reduction"] <= block]
        if not stages:
            raise ConfigError(f"block {block} is smaller than every backbone stride")
        self.fine, self.coarse = stages[-1], len(info) - 1
        # A finer stage than the block (e.g. the stride-4 mtcnn_pnet maps) is averaged over
        # each block, rather than point-sampled by the final bilinear resize.
        reduction = int(info[self.fine]["reduction"])
        self.pool = block // reduction if block % reduction == 0 else 1
        chans = info[self.fine]["num_chs"] + (info[self.coarse]["num_chs"] if self.coarse != self.fine else 0)
        self.backbone = backbone
        self.normalize = Normalize(spec.mean, spec.std)
        self.block = block
        self.num_classes = num_classes
        self.head = nn.Sequential(
            nn.Conv2d(chans, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, max(1, num_classes), 1),
        )
        self.spec = spec

    @property
    def bins(self) -> None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        h, w = x.shape[-2:]
        gh, gw = (h + self.block - 1) // self.block, (w + self.block - 1) // self.block
        idx = sorted({self.fine, self.coarse})
        feats = self.backbone.net.forward_intermediates(  # type: ignore[attr-defined]
            self.normalize(x), indices=idx, intermediates_only=True, stop_early=True
        )
        size = feats[0].shape[-2:]
        cat = torch.cat(
            [feats[0]]
            + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]],
            1,
        )
        out = self.head(cat)
        if self.pool > 1:
            out = F.avg_pool2d(out, self.pool, ceil_mode=True)
        out = F.interpolate(out, size=(gh, gw), mode="bilinear", align_corners=False)
        return out[:, 0] if self.num_classes == 0 else out


@MODELS.register("importance")
def importance(
    *,
    backbone: str = "resnet18",
    block: int = 16,
    num_classes: int = 0,
    hidden: int = 64,
    pretrained: bool = False,
    pretrained_path: str | None = None,
) -> ImportancePredictor:
    """Importance predictor; ``num_classes=0`` regresses the normalised importance,
    ``num_classes=K`` predicts the K quantisation bins (train with ``importance_ce``)."""
    kwargs = dict(locals())
    if num_classes == 1 or num_classes < 0:
        raise ConfigError(f"num_classes must be 0 (regression) or >= 2, got {num_classes}")
    bb = create_backbone(backbone, pretrained=pretrained, pretrained_path=pretrained_path)
    spec = ModelSpec(
        arch="importance",
        backbone=str(getattr(bb, "name", backbone)),
        full_reference=False,
        video=False,
        output="grid_classes" if num_classes else "grid",
        mean=tuple(bb.mean),
        std=tuple(bb.std),
        build_kwargs=card_kwargs(kwargs),
    )
    return ImportancePredictor(bb, block=block, num_classes=num_classes, hidden=hidden, spec=spec)

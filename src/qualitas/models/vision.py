"""Image classification and semantic segmentation models (``task: classification |
segmentation``, docs/tasks.md).

- ``classifier``: a timm backbone (pooled features, offline pretrained weights as for the
  quality models) + dropout + a linear layer: ``(B, 3, H, W) -> (B, K)`` logits.
- ``segmenter``: torchvision's DeepLabV3 / LRASPP / FCN. With ``backbone:
  torchvision:<name>`` the whole torchvision model (``deeplabv3_mobilenet_v3_large``,
  ``fcn_resnet50``, ...); with a timm backbone name, torchvision's own segmentation head
  (``DeepLabHead``, ``FCNHead``, ``LRASPPHead``) on that backbone's intermediate features, so
  the offline pretrained timm weights (e.g. ``tf_efficientnet_lite0``) can be used:
  ``(B, 3, H, W) -> (B, K, H, W)`` logits (bilinear upsampling to the input size).

Inputs are RGB in ``[0, 1]``; normalisation is inside (exported with the graph).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qualitas.errors import ConfigError
from qualitas.models.backbones import create_backbone, intermediate_net, load_weights
from qualitas.models.iqa import Normalize, check_images
from qualitas.models.registry import MODELS, card_kwargs
from qualitas.models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec
from qualitas.registry import did_you_mean

SEG_HEADS = ("deeplabv3", "lraspp", "fcn")
TORCHVISION_SEG = {
    ("deeplabv3", "mobilenet_v3_large"): "deeplabv3_mobilenet_v3_large",
    ("deeplabv3", "resnet50"): "deeplabv3_resnet50",
    ("deeplabv3", "resnet101"): "deeplabv3_resnet101",
    ("fcn", "resnet50"): "fcn_resnet50",
    ("fcn", "resnet101"): "fcn_resnet101",
    ("lraspp", "mobilenet_v3_large"): "lraspp_mobilenet_v3_large",
}
"""torchvision's own segmentation models (``backbone: torchvision:<name>``)."""


class Classifier(nn.Module):
    """``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, num_classes)`` logits."""

    def __init__(self, backbone: nn.Module, *, num_classes: int, dropout: float, spec: ModelSpec) -> None:
        super().__init__()
        self.normalize = Normalize(spec.mean, spec.std)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(int(backbone.num_features), num_classes)  # type: ignore[arg-type]
        self.spec = spec

    @property
    def bins(self) -> None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return self.fc(self.dropout(self.backbone(self.normalize(x))))


@MODELS.register("classifier")
def classifier(
    *,
    num_classes: int = 2,
    backbone: str = "resnet18",
    dropout: float = 0.0,
    multi_label: bool = False,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    freeze_backbone: bool = False,
) -> Classifier:
    """Image classifier; ``multi_label`` only changes how outputs are read (sigmoid per class)."""
    kwargs = dict(locals())
    if num_classes < 2 and not multi_label:
        raise ConfigError(f"model.num_classes must be >= 2, got {num_classes}")
    if num_classes < 1:
        raise ConfigError(f"model.num_classes must be >= 1, got {num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {dropout}")
    bb = create_backbone(
        backbone, pretrained=pretrained, pretrained_path=pretrained_path, freeze=freeze_backbone
    )
    spec = ModelSpec(
        arch="classifier",
        backbone=str(getattr(bb, "name", backbone)),
        full_reference=False,
        video=False,
        output="multilabel" if multi_label else "classes",
        mean=tuple(bb.mean),
        std=tuple(bb.std),
        build_kwargs=card_kwargs(kwargs),
    )
    return Classifier(bb, num_classes=num_classes, dropout=dropout, spec=spec)


class TimmSegmenter(nn.Module):
    """torchvision segmentation head over a timm backbone's intermediate feature maps."""

    def __init__(
        self, backbone: nn.Module, *, head: str, num_classes: int, high_stride: int, spec: ModelSpec
    ):
        super().__init__()
        from torchvision.models.segmentation.deeplabv3 import DeepLabHead
        from torchvision.models.segmentation.fcn import FCNHead
        from torchvision.models.segmentation.lraspp import LRASPPHead

        net = intermediate_net(backbone, spec.backbone)
        info = net.feature_info
        red = [int(f["reduction"]) for f in info]
        highs = [i for i, r in enumerate(red) if r <= high_stride]
        lows = [i for i, r in enumerate(red) if r <= 8]
        if not highs or not lows:
            raise ConfigError(f"backbone '{spec.backbone}' has no stage at stride <= {high_stride}")
        self.high, self.low = highs[-1], lows[-1]
        ch_high, ch_low = int(info[self.high]["num_chs"]), int(info[self.low]["num_chs"])
        self.normalize = Normalize(spec.mean, spec.std)
        self.backbone = backbone
        self.head_name = head
        if head == "deeplabv3":
            self.head: nn.Module = DeepLabHead(ch_high, num_classes)
        elif head == "fcn":
            self.head = FCNHead(ch_high, num_classes)
        else:
            self.head = LRASPPHead(ch_low, ch_high, num_classes, inter_channels=128)
        self.spec = spec

    @property
    def bins(self) -> None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        h, w = x.shape[-2:]
        idx = sorted({self.low, self.high})
        feats = self.backbone.net.forward_intermediates(  # type: ignore[attr-defined]
            self.normalize(x), indices=idx, intermediates_only=True, stop_early=True
        )
        by = dict(zip(idx, feats))
        if self.head_name == "lraspp":
            out = self.head({"low": by[self.low], "high": by[self.high]})
        else:
            out = self.head(by[self.high])
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model with normalisation inside; returns its ``out`` logits."""

    def __init__(self, net: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.normalize = Normalize(spec.mean, spec.std)
        self.net = net
        self.spec = spec

    @property
    def bins(self) -> None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return self.net(self.normalize(x))["out"]


@MODELS.register("segmenter")
def segmenter(
    *,
    num_classes: int = 2,
    head: str = "lraspp",
    backbone: str = "tf_efficientnet_lite0",
    high_stride: int = 16,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    freeze_backbone: bool = False,
) -> nn.Module:
    """Semantic segmenter (see the module docstring); ``high_stride``: the timm stage the
    DeepLab/FCN head (and LRASPP's context branch) reads, 16 or 32."""
    kwargs = dict(locals())
    if num_classes < 2:
        raise ConfigError(f"model.num_classes must be >= 2, got {num_classes}")
    if head not in SEG_HEADS:
        raise ConfigError(
            f"unknown segmentation head '{head}'{did_you_mean(head, SEG_HEADS)}; choose one of {', '.join(SEG_HEADS)}"
        )
    if backbone.startswith("torchvision:"):
        name = backbone.split(":", 1)[1]
        builder = TORCHVISION_SEG.get((head, name))
        if builder is None:
            choices = ", ".join(f"{h} torchvision:{b}" for h, b in TORCHVISION_SEG)
            raise ConfigError(f"torchvision has no '{head}' model with backbone '{name}'; it has: {choices}")
        if pretrained:
            raise ConfigError(
                "pretrained=true with a torchvision: backbone: qualitas downloads nothing; "
                "give pretrained_path (a torchvision state dict) or use a timm backbone with offline weights"
            )
        from torchvision.models import segmentation

        net = getattr(segmentation, builder)(weights=None, weights_backbone=None, num_classes=num_classes)
        if pretrained_path:
            load_weights(
                net,
                pretrained_path,
                ignore=("classifier.4", "classifier.low_classifier", "classifier.high_classifier"),
            )
        spec = ModelSpec(
            arch="segmenter",
            backbone=backbone,
            full_reference=False,
            video=False,
            output="segmentation",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            build_kwargs=card_kwargs(kwargs),
        )
        return TorchvisionSegmenter(net, spec)
    if high_stride not in (8, 16, 32):
        raise ConfigError(f"model.high_stride must be 8, 16 or 32, got {high_stride}")
    bb = create_backbone(
        backbone, pretrained=pretrained, pretrained_path=pretrained_path, freeze=freeze_backbone
    )
    spec = ModelSpec(
        arch="segmenter",
        backbone=str(getattr(bb, "name", backbone)),
        full_reference=False,
        video=False,
        output="segmentation",
        mean=tuple(bb.mean),
        std=tuple(bb.std),
        build_kwargs=card_kwargs(kwargs),
    )
    return TimmSegmenter(bb, head=head, num_classes=num_classes, high_stride=high_stride, spec=spec)

"""Image quality models: no-reference (image -> score) and full-reference (dist, ref -> score).

Inputs are RGB ``float32`` in ``[0, 1]``; normalisation happens inside (``Normalize``).

Full-reference fusion (``fusion=``):

* ``"diff6"`` (default, CenseoQoE-style): one backbone with a 6-channel input
  ``[d, r - d]`` where ``d``, ``r`` are the normalised distorted and reference images.
  The difference channels show the network the error directly; one backbone pass per
  pair. With pretrained weights the 3-channel first convolution is adapted to 6 inputs
  so that it starts as the pretrained layer on ``d`` (``backbones.adapt_first_conv``).
* ``"siamese"``: the same (shared-weight) backbone on ``d`` and ``r``; the head sees
  ``[f_d, f_r - f_d]`` (2C features). Two passes per pair, but 3-channel weights load
  unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from qualitas.errors import ConfigError, UsageError
from qualitas.models.backbones import create_backbone
from qualitas.models.heads import build_head
from qualitas.models.registry import MODELS, card_kwargs
from qualitas.models.spec import ModelSpec


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel on ``(N, 3, H, W)``; mean/std are buffers (exported)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def check_images(x: torch.Tensor, what: str = "images") -> None:
    """Input check for eager calls; skipped while tracing (the exported graph fixes the rank)."""
    if torch.jit.is_tracing():
        return
    if x.ndim != 4 or x.shape[1] != 3:
        raise UsageError(f"{what}: expected (B,3,H,W) RGB in [0,1], got {tuple(x.shape)}")


def check_pair(dist: torch.Tensor, ref: torch.Tensor) -> None:
    if not torch.jit.is_tracing() and dist.shape != ref.shape:
        raise UsageError(
            f"distorted and reference must have the same shape, got {tuple(dist.shape)} and {tuple(ref.shape)}"
        )


# ---------------------------------------------------------------------------------------
# Feature extractors shared by image and video models: images -> (N, out_features)


class ImageFeatures(nn.Module):
    """No-reference features: ``(N, 3, H, W) -> (N, C)``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.normalize = Normalize(backbone.mean, backbone.std)
        self.backbone = backbone
        self.out_features = int(backbone.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))


class DiffFusion(nn.Module):
    """FR features from one 6-channel pass: ``[d, r - d]`` -> ``(N, C)``."""

    in_chans = 6

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.normalize = Normalize(backbone.mean, backbone.std)
        self.backbone = backbone
        self.out_features = int(backbone.num_features)

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        d = self.normalize(dist)
        r = self.normalize(ref)
        return self.backbone(torch.cat([d, r - d], dim=1))


class SiameseFusion(nn.Module):
    """FR features from a shared backbone: ``[f_d, f_r - f_d]`` -> ``(N, 2C)``."""

    in_chans = 3

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.normalize = Normalize(backbone.mean, backbone.std)
        self.backbone = backbone
        self.out_features = 2 * int(backbone.num_features)

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        # One backbone call on the stacked batch: half the launches, same weights.
        feats = self.backbone(self.normalize(torch.cat([dist, ref], dim=0)))
        # reshape, not chunk: chunk's split sizes would pin the batch size in torch.export
        pair = feats.reshape(2, -1, feats.shape[-1])
        f_d, f_r = pair[0], pair[1]
        return torch.cat([f_d, f_r - f_d], dim=1)


FUSIONS: dict[str, type[nn.Module]] = {"diff6": DiffFusion, "siamese": SiameseFusion}


def fusion_class(fusion: str) -> type[nn.Module]:
    if fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion '{fusion}'; choose one of: {', '.join(FUSIONS)}")
    return FUSIONS[fusion]


# ---------------------------------------------------------------------------------------
# Models


class NRIQAModel(nn.Module):
    """No-reference image model: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)`` (or ``(B, N)``)."""

    def __init__(self, features: ImageFeatures, head: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.spec = spec

    @property
    def bins(self) -> torch.Tensor | None:
        return self.head.bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return self.head(self.features(x))


class FRIQAModel(nn.Module):
    """Full-reference image model: ``(dist, ref)``, each ``(B, 3, H, W)`` -> ``(B,)`` (or ``(B, N)``)."""

    def __init__(self, features: nn.Module, head: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.spec = spec

    @property
    def bins(self) -> torch.Tensor | None:
        return self.head.bins

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        check_images(dist, "dist")
        check_pair(dist, ref)
        return self.head(self.features(dist, ref))


def make_spec(arch: str, backbone: nn.Module, head: nn.Module, kwargs: dict, **fields: object) -> ModelSpec:
    return ModelSpec(
        arch=arch,
        backbone=str(getattr(backbone, "name", type(backbone).__name__)),
        output=head.output,
        mean=tuple(backbone.mean),
        std=tuple(backbone.std),
        bins=tuple(head.bins.tolist()) if head.bins is not None else None,
        build_kwargs=card_kwargs(kwargs),
        **fields,  # type: ignore[arg-type]
    )


@MODELS.register("nr_iqa")
def nr_iqa(
    *,
    backbone: str = "resnet18",
    head: str = "mlp",
    hidden: int = 256,
    dropout: float = 0.0,
    num_bins: int = 10,
    bin_values: Sequence[float] | None = None,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    pool: str = "avg",
    freeze_backbone: bool = False,
    nss_patch: int = 0,
    calibration: str = "none",
) -> NRIQAModel:
    """No-reference IQA: backbone -> pooled features -> head (``"mlp"`` score or ``"distribution"``).

    ``pool: stats_nss`` appends the input's natural-scene statistics, per ``nss_patch`` cell
    (the fragment size of a fragments input; 0 = the whole input). ``calibration: logistic``
    bends a score head's output by the VQEG logistic that the probe fits (``heads.RegressionHead``)."""
    kwargs = dict(locals())
    bb = create_backbone(
        backbone,
        pretrained=pretrained,
        pretrained_path=pretrained_path,
        pool=pool,
        freeze=freeze_backbone,
        nss_patch=nss_patch,
    )
    features = ImageFeatures(bb)
    hd = build_head(
        head,
        features.out_features,
        hidden=hidden,
        dropout=dropout,
        num_bins=num_bins,
        bin_values=bin_values,
        calibration=calibration,
    )
    spec = make_spec("nr_iqa", bb, hd, kwargs, full_reference=False, video=False)
    return NRIQAModel(features, hd, spec)


@MODELS.register("fr_iqa")
def fr_iqa(
    *,
    backbone: str = "resnet18",
    fusion: str = "diff6",
    head: str = "mlp",
    hidden: int = 256,
    dropout: float = 0.0,
    num_bins: int = 10,
    bin_values: Sequence[float] | None = None,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    pool: str = "avg",
    freeze_backbone: bool = False,
) -> FRIQAModel:
    """Full-reference IQA: ``fusion="diff6"`` (6-channel ``[d, r-d]``) or ``"siamese"``."""
    kwargs = dict(locals())
    cls = fusion_class(fusion)
    bb = create_backbone(
        backbone,
        in_chans=cls.in_chans,
        pretrained=pretrained,
        pretrained_path=pretrained_path,
        pool=pool,
        freeze=freeze_backbone,
    )
    features = cls(bb)
    hd = build_head(
        head, features.out_features, hidden=hidden, dropout=dropout, num_bins=num_bins, bin_values=bin_values
    )
    spec = make_spec("fr_iqa", bb, hd, kwargs, full_reference=True, video=False)
    return FRIQAModel(features, hd, spec)

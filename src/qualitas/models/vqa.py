"""Video quality models: per-frame backbone features pooled over time, then a head.

Clips are ``(B, T, 3, H, W)`` RGB in ``[0, 1]``. Frames go through the backbone as one
``(B*T, ...)`` batch; features are reshaped to ``(B, T, C)``, pooled over ``T``
(``temporal_pool``: ``"mean"``, ``"attention"`` or ``"gru"``) and scored by the head.

``tsm=True`` inserts the temporal shift module into the backbone's residual blocks
(ResNet-style backbones). A TSM model mixes neighbouring frames inside the backbone,
so its clips must have exactly ``num_segments`` frames; without TSM any ``T`` works and
``num_segments`` is only the clip length recorded on the card for the data pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from qualitas.errors import UsageError
from qualitas.models.backbones import create_backbone
from qualitas.models.heads import build_head
from qualitas.models.iqa import ImageFeatures, fusion_class, make_spec
from qualitas.models.registry import MODELS
from qualitas.models.spec import ModelSpec
from qualitas.models.temporal import build_temporal_pool, insert_temporal_shift


def check_clip(x: torch.Tensor, spec: ModelSpec, what: str = "clip") -> None:
    """Input check for eager calls; skipped while tracing (the exported graph fixes the rank)."""
    if torch.jit.is_tracing():
        return
    if x.ndim != 5 or x.shape[2] != 3:
        raise UsageError(f"{what}: expected (B,T,3,H,W) RGB in [0,1], got {tuple(x.shape)}")
    if spec.fixed_num_frames and x.shape[1] != spec.num_frames:
        raise UsageError(
            f"{what}: this TSM model needs T={spec.num_frames} frames per clip, got {x.shape[1]}"
        )


class NRVQAModel(nn.Module):
    """No-reference video model: ``(B, T, 3, H, W)`` -> ``(B,)`` (or ``(B, N)``)."""

    def __init__(self, features: nn.Module, pool: nn.Module, head: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.features = features
        self.pool = pool
        self.head = head
        self.spec = spec

    @property
    def bins(self) -> torch.Tensor | None:
        return self.head.bins

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        check_clip(clip, self.spec)
        b, t = clip.shape[0], clip.shape[1]
        feats = self.features(clip.flatten(0, 1))  # (B*T, C)
        return self.head(self.pool(feats.reshape(b, t, -1)))


class FRVQAModel(nn.Module):
    """Full-reference video model: ``(dist_clip, ref_clip)``, each ``(B, T, 3, H, W)`` -> ``(B,)``."""

    def __init__(self, features: nn.Module, pool: nn.Module, head: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.features = features
        self.pool = pool
        self.head = head
        self.spec = spec

    @property
    def bins(self) -> torch.Tensor | None:
        return self.head.bins

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        check_clip(dist, self.spec, "dist")
        if not torch.jit.is_tracing() and dist.shape != ref.shape:
            raise UsageError(
                f"distorted and reference clips differ in shape: {tuple(dist.shape)} vs {tuple(ref.shape)}"
            )
        b, t = dist.shape[0], dist.shape[1]
        feats = self.features(dist.flatten(0, 1), ref.flatten(0, 1))
        return self.head(self.pool(feats.reshape(b, t, -1)))


def _video_backbone(
    backbone: str,
    in_chans: int,
    pretrained: bool,
    pretrained_path: str | None,
    tsm: bool,
    num_segments: int,
    shift_div: int,
    pool: str = "avg",
    freeze: bool = False,
    nss_patch: int = 0,
) -> nn.Module:
    # Weights are loaded before the shift is inserted; TSM keeps parameter names anyway.
    bb = create_backbone(
        backbone,
        in_chans=in_chans,
        pretrained=pretrained,
        pretrained_path=pretrained_path,
        pool=pool,
        freeze=freeze,
        nss_patch=nss_patch,
    )
    if tsm:
        insert_temporal_shift(bb, num_segments, shift_div)
    return bb


@MODELS.register("nr_vqa")
def nr_vqa(
    *,
    backbone: str = "resnet18",
    temporal_pool: str = "mean",
    pool_hidden: int = 128,
    tsm: bool = False,
    num_segments: int = 8,
    shift_div: int = 8,
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
) -> NRVQAModel:
    """No-reference VQA: frame features (optionally with TSM) -> temporal pool -> head
    (``calibration: logistic``: a fitted VQEG logistic after a score head, ``heads.RegressionHead``)."""
    kwargs = dict(locals())
    weights = (pretrained, pretrained_path)
    shift = (tsm, num_segments, shift_div)
    bb = _video_backbone(backbone, 3, *weights, *shift, pool, freeze_backbone, nss_patch)
    features = ImageFeatures(bb)
    pool = build_temporal_pool(temporal_pool, features.out_features, hidden=pool_hidden)
    hd = build_head(
        head,
        pool.out_features,
        hidden=hidden,
        dropout=dropout,
        num_bins=num_bins,
        bin_values=bin_values,
        calibration=calibration,
    )
    spec = make_spec(
        "nr_vqa",
        bb,
        hd,
        kwargs,
        full_reference=False,
        video=True,
        num_frames=num_segments,
        fixed_num_frames=tsm,
    )
    return NRVQAModel(features, pool, hd, spec)


@MODELS.register("fr_vqa")
def fr_vqa(
    *,
    backbone: str = "resnet18",
    fusion: str = "diff6",
    temporal_pool: str = "mean",
    pool_hidden: int = 128,
    tsm: bool = False,
    num_segments: int = 8,
    shift_div: int = 8,
    head: str = "mlp",
    hidden: int = 256,
    dropout: float = 0.0,
    num_bins: int = 10,
    bin_values: Sequence[float] | None = None,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    pool: str = "avg",
    freeze_backbone: bool = False,
) -> FRVQAModel:
    """Full-reference VQA: per-frame FR fusion (see ``fr_iqa``) -> temporal pool -> head."""
    kwargs = dict(locals())
    cls = fusion_class(fusion)
    bb = _video_backbone(
        backbone,
        cls.in_chans,
        pretrained,
        pretrained_path,
        tsm,
        num_segments,
        shift_div,
        pool,
        freeze_backbone,
    )
    features = cls(bb)
    pool = build_temporal_pool(temporal_pool, features.out_features, hidden=pool_hidden)
    hd = build_head(
        head, pool.out_features, hidden=hidden, dropout=dropout, num_bins=num_bins, bin_values=bin_values
    )
    spec = make_spec(
        "fr_vqa",
        bb,
        hd,
        kwargs,
        full_reference=True,
        video=True,
        num_frames=num_segments,
        fixed_num_frames=tsm,
    )
    return FRVQAModel(features, pool, hd, spec)

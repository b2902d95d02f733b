"""Temporal modelling for video: the temporal shift module (TSM) and pooling over time.

TSM (Lin, Gan, Han, "TSM: Temporal Shift Module for Efficient Video Understanding",
ICCV 2019) moves a fraction of the channels one frame forward and one frame backward in
time, so 2D convolutions mix information between neighbouring frames at zero FLOPs. We
use the paper's "residual shift": the shift sits on the residual branch of every
ResNet block, before its first convolution, and — as the paper does for MobileNetV2 — on the
residual branch of every inverted-residual block that has a skip connection (EfficientNet,
EfficientNet-Lite, MobileNet families of timm), before its first (point-wise) convolution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from qualitas.errors import ConfigError
from qualitas.registry import Registry


def temporal_shift(x: torch.Tensor, num_segments: int, shift_div: int = 8) -> torch.Tensor:
    """Shift channels in time: ``(B*T, C, H, W) -> (B*T, C, H, W)`` with ``T = num_segments``.

    With ``fold = C // shift_div``: channels ``[0, fold)`` take the *next* frame's values
    (``out[t] = x[t+1]``, zero at the last frame), channels ``[fold, 2*fold)`` take the
    *previous* frame's (``out[t] = x[t-1]``, zero at the first), the rest are unchanged.
    Same convention as the official TSM code. Built from slicing and ``torch.cat`` (no
    in-place writes) so tracing and ONNX export see plain ops.
    """
    nt, c, h, w = x.shape
    fold = c // shift_div
    x5 = x.reshape(-1, num_segments, c, h, w)
    zeros = torch.zeros_like(x5[:, :1, :fold])
    backward = torch.cat([x5[:, 1:, :fold], zeros], dim=1)
    forward = torch.cat([zeros, x5[:, :-1, fold : 2 * fold]], dim=1)
    out = torch.cat([backward, forward, x5[:, :, 2 * fold :]], dim=2)
    return out.reshape(nt, c, h, w)


class TemporalShiftConv2d(nn.Conv2d):
    """A ``Conv2d`` that applies :func:`temporal_shift` to its input first.

    It shares the parameters of the convolution it replaces and keeps its parameter
    names, so a network with TSM loads the same weights files as the plain network.
    """

    def __init__(self, conv: nn.Conv2d, num_segments: int, shift_div: int = 8) -> None:
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        self.weight = conv.weight
        self.bias = conv.bias
        self.num_segments = num_segments
        self.shift_div = shift_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(temporal_shift(x, self.num_segments, self.shift_div))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_segments={self.num_segments}, shift_div={self.shift_div}"


def _resnet_block_types() -> tuple[type, ...]:
    from timm.models.resnest import ResNestBottleneck
    from timm.models.resnet import BasicBlock, Bottleneck

    return (BasicBlock, Bottleneck, ResNestBottleneck)


def _first_conv_of_residual_branch(block: nn.Module) -> str | None:
    """Attribute name of the convolution TSM shifts the input of, or None (no residual branch)."""
    if isinstance(block, _resnet_block_types()):
        return "conv1"
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

    if isinstance(block, InvertedResidual) and block.has_skip:
        return "conv_pw"
    if isinstance(block, DepthwiseSeparableConv) and block.has_skip:
        return "conv_dw"
    return None


def insert_temporal_shift(net: nn.Module, num_segments: int, shift_div: int = 8) -> int:
    """Put TSM on the residual branch of every residual block of ``net`` (in place).

    Returns the number of blocks shifted; raises ``ConfigError`` if ``net`` has none
    (TSM is supported for timm ResNet/ResNeSt and EfficientNet/MobileNet-style families).
    """
    if num_segments < 2:
        raise ConfigError(f"TSM needs num_segments >= 2, got {num_segments}")
    if shift_div < 2:
        raise ConfigError(f"TSM needs shift_div >= 2, got {shift_div}")
    count = 0
    for block in list(net.modules()):
        attr = _first_conv_of_residual_branch(block)
        if attr is not None and type(getattr(block, attr)) is nn.Conv2d:
            setattr(block, attr, TemporalShiftConv2d(getattr(block, attr), num_segments, shift_div))
            count += 1
    if count == 0:
        raise ConfigError(
            "tsm=true needs a backbone with residual blocks (resnet*, resnest*, test_resnet, "
            f"efficientnet*, tf_efficientnet_lite*, mobilenet*); {type(net).__name__} has none to shift"
        )
    return count


# ---------------------------------------------------------------------------------------
# Pooling over time: (B, T, C) -> (B, C)

TEMPORAL_POOLS: Registry[Callable[..., nn.Module]] = Registry("temporal_pools")
"""Pooling classes ``cls(in_features, *, hidden)`` mapping ``(B, T, C) -> (B, out_features)``
and exposing ``out_features``."""


@TEMPORAL_POOLS.register("mean")
class MeanPool(nn.Module):
    """Average of the per-frame features: ``(B, T, C) -> (B, C)``."""

    def __init__(self, in_features: int, *, hidden: int = 0) -> None:
        super().__init__()
        self.out_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


@TEMPORAL_POOLS.register("attention")
class AttentionPool(nn.Module):
    """Learned attention over frames: ``a = softmax_t(w2 tanh(W1 x_t))``, ``out = sum_t a_t x_t``.

    ``(B, T, C) -> (B, C)``; the frame weights are the same for every channel. ``hidden``
    is the width of the scoring MLP (additive attention, Bahdanau-style).
    """

    def __init__(self, in_features: int, *, hidden: int = 128) -> None:
        super().__init__()
        hidden = hidden or 128
        self.out_features = in_features
        self.score = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(x), dim=1)  # (B, T, 1)
        return (weights * x).sum(dim=1)


@TEMPORAL_POOLS.register("gru")
class GRUPool(nn.Module):
    """A GRU over the frame features, then the mean of its outputs (VSFA-style).

    ``(B, T, C) -> (B, hidden)``.
    """

    def __init__(self, in_features: int, *, hidden: int = 128) -> None:
        super().__init__()
        hidden = hidden or 128
        self.gru = nn.GRU(in_features, hidden, batch_first=True)
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return out.mean(dim=1)


def build_temporal_pool(name: str, in_features: int, *, hidden: int = 128) -> nn.Module:
    """Build a registered pooling ``(B, T, C) -> (B, pool.out_features)``."""
    return TEMPORAL_POOLS.get(name)(in_features, hidden=hidden)

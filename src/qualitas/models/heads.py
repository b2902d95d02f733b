"""Prediction heads: pooled features ``(B, C)`` -> score ``(B,)`` or distribution ``(B, N)``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from qualitas.errors import ConfigError
from qualitas.registry import Registry

HEADS: Registry[Callable[..., nn.Module]] = Registry("heads")
"""Head classes ``cls(in_features, *, hidden, dropout[, num_bins, bin_values])`` with a class
attribute ``output`` ("score" | "distribution") and a ``bins`` buffer (``None`` for scores)."""


def expected_score(probs: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Mean of a score distribution: ``probs (B, N)``, ``bins (N,)`` -> ``(B,)``.

    ``sum_k probs[:, k] * bins[k]`` (NIMA's mean score); ``probs`` rows sum to one.
    """
    if probs.ndim != 2 or probs.shape[1] != bins.numel():
        raise ValueError(f"expected probs (B,{bins.numel()}), got {tuple(probs.shape)}")
    return probs @ bins.to(probs.dtype)


def output_to_score(
    output: torch.Tensor, bins: torch.Tensor | None = None, *, scale: float = 1.0, shift: float = 0.0
) -> torch.Tensor:
    """The one conversion of a model's raw output into scores ``(B,)``, float32.

    A distribution ``(B, N)`` gives its expected score over ``bins (N,)`` (already in score
    units); a score ``(B,)`` becomes ``output * scale + shift`` (the inverse of the MOS
    normalisation fitted in training, :class:`qualitas.data.scores.ScoreNorm`; the
    defaults leave it in the model's own units).
    """
    output = output.float()
    if output.ndim == 2:
        if bins is None:
            raise ValueError(f"got a (B,N) output {tuple(output.shape)} but the model has no bins")
        return expected_score(output, bins.to(output))
    return output * scale + shift


def to_score(output: torch.Tensor, bins: torch.Tensor | None) -> torch.Tensor:
    """A model's output as scores ``(B,)``: scores pass through, distributions are averaged."""
    if output.ndim == 1:
        return output
    return output_to_score(output, bins)


def _mlp(in_features: int, out_features: int, hidden: int, dropout: float) -> nn.Sequential:
    """``hidden=0`` gives a single linear layer; else Linear-ReLU-Dropout-Linear."""
    if hidden < 0 or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"head needs hidden >= 0 and 0 <= dropout < 1, got {hidden}, {dropout}")
    if hidden == 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, out_features))
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=False),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_features),
    )


CALIBRATIONS = ("none", "logistic")
"""Output calibrations of a score head (``model.calibration``)."""


def calibration_curve(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """``clip(k * sigmoid((x - m) / |s|) + a * x + c, lo, hi)``: ``x (B,)``, ``params (7,) =
    (k, m, s, a, c, lo, hi)`` -> ``(B,)``.

    Holds what :func:`qualitas.evaluation.correlation.fit_logistic` fits (in numpy): its VQEG
    logistic ``b2 + (b1 - b2) * sigmoid((x - b3) / |b4|)`` is ``(b1 - b2, b3, b4, 0, b2)``, its
    linear fallback ``slope * x + intercept`` is ``(0, 0, 1, slope, intercept)``; ``lo, hi``
    keep the output inside the range of the training targets (as libvmaf clips VMAF to 0-100).
    Written in torch so that it runs inside the model and exports with it.
    """
    k, m, s, a, c, lo, hi = params.unbind()
    y = k * torch.sigmoid((x - m) / s.abs()) + a * x + c
    return torch.minimum(torch.maximum(y, lo), hi)


@HEADS.register("mlp")
class RegressionHead(nn.Module):
    """Regression MLP: ``(B, C) -> (B,)`` scores.

    ``calibration="logistic"``: the MLP's output goes through :func:`calibration_curve`, whose
    parameters (buffer ``calibration_params``, not trained by gradients) the closed-form probe
    fits on the training predictions (``trainer.method: probe``): the VQEG logistic, a
    monotone map, so rank figures are unchanged and the absolute scale (RMSE) follows the
    targets' curve (VMAF saturating near 100).
    """

    output = "score"
    bins: torch.Tensor | None
    calibration_params: torch.Tensor | None

    def __init__(
        self, in_features: int, *, hidden: int = 256, dropout: float = 0.0, calibration: str = "none"
    ) -> None:
        super().__init__()
        if calibration not in CALIBRATIONS:
            raise ConfigError(
                f"unknown model.calibration '{calibration}'; choose one of {', '.join(CALIBRATIONS)}"
            )
        self.mlp = _mlp(in_features, 1, hidden, dropout)
        self.register_buffer("bins", None)
        # Until the probe fits it: the identity.
        identity = [0.0, 0.0, 1.0, 1.0, 0.0, -math.inf, math.inf]
        params = torch.tensor(identity) if calibration == "logistic" else None
        self.register_buffer("calibration_params", params)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        out = self.mlp(feats).squeeze(-1)
        if self.calibration_params is not None:
            out = calibration_curve(out, self.calibration_params)
        return out


@HEADS.register("distribution")
class DistributionHead(nn.Module):
    """Score distribution over ``N`` bins (NIMA): ``(B, C) -> (B, N)`` softmax probabilities.

    ``bins`` (buffer, ``(N,)``) are the score of each bin, ``1..N`` by default (AVA's 1-10
    votes); :func:`expected_score` gives the mean score.
    """

    output = "distribution"
    bins: torch.Tensor

    def __init__(
        self,
        in_features: int,
        *,
        num_bins: int = 10,
        bin_values: Sequence[float] | None = None,
        hidden: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_bins < 2:
            raise ConfigError(f"distribution head needs num_bins >= 2, got {num_bins}")
        values = list(bin_values) if bin_values is not None else [float(k) for k in range(1, num_bins + 1)]
        if len(values) != num_bins:
            raise ConfigError(f"bin_values has {len(values)} values but num_bins is {num_bins}")
        self.mlp = _mlp(in_features, num_bins, hidden, dropout)
        self.register_buffer("bins", torch.tensor(values, dtype=torch.float32))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.mlp(feats), dim=-1)


def build_head(
    name: str,
    in_features: int,
    *,
    hidden: int = 256,
    dropout: float = 0.0,
    num_bins: int = 10,
    bin_values: Sequence[float] | None = None,
    calibration: str = "none",
) -> nn.Module:
    """Build a registered head; distribution-only arguments go to distribution heads only,
    ``calibration`` to the regression head only."""
    cls = HEADS.get(name)
    if getattr(cls, "output", "score") == "distribution":
        if calibration != "none":
            raise ConfigError(f"model.calibration '{calibration}' needs a score head (model.head: mlp)")
        return cls(in_features, num_bins=num_bins, bin_values=bin_values, hidden=hidden, dropout=dropout)
    if calibration != "none":
        return cls(in_features, hidden=hidden, dropout=dropout, calibration=calibration)
    return cls(in_features, hidden=hidden, dropout=dropout)

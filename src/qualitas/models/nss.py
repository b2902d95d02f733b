"""``nss``: a parameter-free natural-scene-statistics feature extractor used as a backbone.

Why hand-written: a no-reference model has to tell distortion from content, and a CNN
trained from random initialisation on a few dozen photos learns the photos instead (the
first shipped default reached SROCC 0.38 on held-out content). Pretrained ImageNet weights
cannot be fetched here, so the default models use the statistics that classic NR-IQA
(BRISQUE, NIQE, blockiness and noise estimators) showed to separate distortions from
content, computed in torch so they batch, run on cuda and export to ONNX, and a small MLP
head (``qualitas.models.heads``) learns the mapping to quality.

Per image (``(B, 3, H, W)`` RGB in ``[0, 1]``; the luma is BT.601 full range, 0-255):

* at 3 dyadic scales of the luma (2x2 average pooling between scales): MSCN coefficients
  (7x7 gaussian, sigma 7/6, as BRISQUE) -> log variance and the GGD shape proxy
  ``log E[m^2] / E[|m|]^2``; the four paired products (H, V, D1, D2) -> log left/right
  spread, mean and shape proxy (AGGD by moments, no table lookup); the local contrast map
  -> mean/std of ``log(1 + sigma)`` and the share of flat pixels at three thresholds; log
  gradient and Laplacian energy; the share of zero gradients (quantisation, flat blocks);
* blockiness: the 8- and 16-pixel periodicity of horizontal and vertical gradient
  energy (phase-free: max over phases / mean), impulse share (pixels far from their 3x3
  mean);
* colour: per-channel mean/std, Cb/Cr mean/std, saturation mean/std, clipped shares, a
  16-bin soft luma histogram and its entropy, chroma MSCN variance and Laplacian energy.

The features then go through ``BatchNorm1d(affine=False, momentum=None)``: its running
statistics (cumulative averages over the training batches) are saved with the weights, so
the head sees standardised inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qualitas.errors import ConfigError
from qualitas.functional.nss import mscn

_EPS = 1e-6
_HIST_BINS = 16


def _log(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x.clamp_min(_EPS))


def _mean(x: torch.Tensor) -> torch.Tensor:
    """Spatial mean of ``(B, C, H, W)`` -> ``(B, C)``."""
    return x.mean(dim=(-2, -1))


def _mscn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MSCN coefficients and local contrast of every channel of ``(B, C, H, W)`` (0-255)."""
    # float64: the local variance E[x^2] - E[x]^2 cancels catastrophically in float32 on
    # flat bright areas (sigma noise ~0.05 grey levels), enough to make exported graphs and
    # eager runs disagree on the flatness statistics.
    m, sigma = mscn(x.flatten(0, 1).double(), padding="replicate")
    return m.view_as(x).to(x.dtype), sigma.view_as(x).to(x.dtype)


def _shape(x: torch.Tensor) -> torch.Tensor:
    """GGD shape proxy ``log E[x^2] / E[|x|]^2`` over space: ``(B, C, H, W) -> (B, C)``."""
    return _log(_mean(x * x)) - 2.0 * _log(_mean(x.abs()))


def _aggd(p: torch.Tensor) -> list[torch.Tensor]:
    """Asymmetric spread (left/right std), mean and shape proxy of ``(B, 1, H, W)``."""
    # A soft sign (width 1e-3): products within float rounding of 0 (flat or clipped areas)
    # would otherwise switch sides between eager and exported graphs and move the counts.
    neg = torch.sigmoid(p * -1e3)
    pos = 1.0 - neg
    left = _mean(p * p * neg) / (_mean(neg) + _EPS)
    right = _mean(p * p * pos) / (_mean(pos) + _EPS)
    return [0.5 * _log(left), 0.5 * _log(right), _mean(p), _shape(p)]


def _laplacian_energy(x: torch.Tensor) -> torch.Tensor:
    """Log mean |4-neighbour Laplacian| of ``(B, C, H, W)`` (valid part) -> ``(B, C)``."""
    c = x[..., 1:-1, 1:-1]
    lap = c * 4 - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]
    return _log(_mean(lap.abs()))


def _scale_features(y: torch.Tensor) -> list[torch.Tensor]:
    """26 statistics of one luma scale ``(B, 1, H, W)``, each ``(B, 1)``."""
    m, sigma = _mscn(y)
    feats = [_log(_mean(m * m)), _shape(m)]
    pairs = (
        m[..., :, :-1] * m[..., :, 1:],
        m[..., :-1, :] * m[..., 1:, :],
        m[..., :-1, :-1] * m[..., 1:, 1:],
        m[..., :-1, 1:] * m[..., 1:, :-1],
    )
    for p in pairs:
        feats += _aggd(p)
    ls = torch.log1p(sigma)
    mean_ls = _mean(ls)
    feats += [mean_ls, torch.sqrt(_mean((ls - mean_ls[..., None, None]) ** 2) + _EPS)]
    feats += [_mean(torch.exp(-sigma / tau)) for tau in (1.0, 3.0, 10.0)]
    dx = y[..., :, 1:] - y[..., :, :-1]
    dy = y[..., 1:, :] - y[..., :-1, :]
    feats.append(_log(_mean(dx.abs()) + _mean(dy.abs())))
    feats.append(_laplacian_energy(y))
    feats.append(0.5 * (_mean(torch.exp(-dx * dx * 4.0)) + _mean(torch.exp(-dy * dy * 4.0))))
    return feats


_SCALE_NAMES = (
    ["mscn_logvar", "mscn_shape"]
    + [
        f"{o}_{k}"
        for o in ("pair_h", "pair_v", "pair_d1", "pair_d2")
        for k in ("left", "right", "mean", "shape")
    ]
    + ["contrast_logmean", "contrast_logstd", "flat_1", "flat_3", "flat_10"]
    + ["grad_logenergy", "laplacian_logenergy", "zero_grad"]
)


def feature_names(num_scales: int = 3) -> list[str]:
    """Names of the raw statistics, in the order of :meth:`NSSFeatures.raw`."""
    names = [f"s{s}_{n}" for s in range(num_scales) for n in _SCALE_NAMES]
    names += [f"block{p}_{d}_{k}" for p in (8, 16) for d in ("x", "y") for k in ("peak", "spread")]
    names += ["impulse"]
    names += [f"{c}_mean" for c in "rgb"] + [f"{c}_std" for c in "rgb"]
    names += ["cb_mean", "cr_mean", "cb_logstd", "cr_logstd", "sat_mean", "sat_std", "clip_hi", "clip_lo"]
    names += [f"hist_{i}" for i in range(_HIST_BINS)] + ["hist_entropy"]
    names += ["cb_mscn_logvar", "cr_mscn_logvar", "cb_laplacian_logenergy", "cr_laplacian_logenergy"]
    return names


def _periodicity(energy: torch.Tensor, period: int) -> list[torch.Tensor]:
    """Blockiness of a gradient-energy profile ``(B, L)`` at ``period`` -> 2 x ``(B, 1)``.

    Phase-free: the profile is folded by phase, and the strongest phase is compared with
    the mean, so crops need not be aligned with the coding grid.
    """
    n = (energy.shape[-1] // period) * period
    folded = energy[..., :n].reshape(energy.shape[0], -1, period).mean(dim=1)  # (B, period)
    mean = folded.mean(dim=-1, keepdim=True) + _EPS
    return [_log(folded.amax(dim=-1, keepdim=True) / mean), _log(folded.std(dim=-1, keepdim=True) / mean)]


class NSSFeatures(nn.Module):
    """``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, num_features)`` standardised statistics.

    ``H, W >= 32``. No learnable parameters; the BatchNorm running statistics are buffers.
    """

    num_scales = 3

    def __init__(self) -> None:
        super().__init__()
        self.name = "nss"
        # Identity normalisation: the statistics want the image in display units.
        self.mean = (0.0, 0.0, 0.0)
        self.std = (1.0, 1.0, 1.0)
        self.register_buffer(
            "centres", torch.linspace(0.0, 255.0, _HIST_BINS).view(1, _HIST_BINS, 1, 1), persistent=False
        )
        self.num_features = len(feature_names(self.num_scales))
        # momentum=None: a cumulative average over every training batch. The statistics are
        # fixed functions of the data, so the exact dataset mean/variance is the right
        # estimate; an exponential average would lag for hundreds of steps and leave the
        # first epochs' evaluation mis-scaled.
        self.norm = nn.BatchNorm1d(self.num_features, affine=False, momentum=None)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised statistics ``(B, num_features)``."""
        rgb = x.clamp(0.0, 1.0) * 255.0
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb = -0.168736 * r - 0.331264 * g + 0.5 * b
        cr = 0.5 * r - 0.418688 * g - 0.081312 * b
        feats: list[torch.Tensor] = []
        ys = y
        for s in range(self.num_scales):
            if s:
                ys = F.avg_pool2d(ys, 2)
            feats += _scale_features(ys)
        # Blockiness at 8 and 16 px, horizontal and vertical.
        ex = (y[..., :, 1:] - y[..., :, :-1]).abs().mean(dim=(1, 2))  # (B, W-1)
        ey = (y[..., 1:, :] - y[..., :-1, :]).abs().mean(dim=(1, 3))  # (B, H-1)
        for period in (8, 16):
            feats += _periodicity(ex, period) + _periodicity(ey, period)
        impulse = (y - F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, stride=1)).abs()
        feats.append(_mean(torch.sigmoid((impulse - 40.0) / 5.0)))
        # Colour.
        feats += [
            _mean(rgb) / 255.0,
            torch.sqrt(_mean((rgb - _mean(rgb)[..., None, None]) ** 2) + _EPS) / 255.0,
        ]
        chroma = torch.cat([cb, cr], dim=1)
        feats += [
            _mean(chroma) / 128.0,
            _log(torch.sqrt(_mean((chroma - _mean(chroma)[..., None, None]) ** 2))),
        ]
        mx, mn = rgb.amax(dim=1, keepdim=True), rgb.amin(dim=1, keepdim=True)
        sat = (mx - mn) / (mx + 1.0)
        feats += [_mean(sat), torch.sqrt(_mean((sat - _mean(sat)[..., None, None]) ** 2) + _EPS)]
        feats += [_mean(torch.sigmoid((y - 250.0) / 2.0)), _mean(torch.sigmoid((5.0 - y) / 2.0))]
        small = F.avg_pool2d(y, 2)
        hist = _mean(torch.exp(-((small - self.centres) ** 2) / (2.0 * 8.0**2)))  # (B, 16)
        hist = hist / (hist.sum(dim=1, keepdim=True) + _EPS)
        feats += [hist, -(hist * _log(hist)).sum(dim=1, keepdim=True)]
        mc, _ = _mscn(chroma)
        feats.append(_log(_mean(mc * mc)))
        feats.append(_laplacian_energy(chroma))
        return torch.cat(feats, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, num_features)``."""
        f = self.raw(x)
        if self.training:
            return self.norm(f)
        # Inference spelled out: the ONNX exporter cannot infer BatchNorm's channel count here.
        bn = self.norm
        return (f - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)


def nss(*, in_chans: int = 3, pretrained_path: str | None = None) -> NSSFeatures:
    """The ``nss`` backbone (RGB only; nothing to load: its statistics are fixed)."""
    if in_chans != 3:
        raise ConfigError("backbone 'nss' takes RGB images only (no-reference models)")
    if pretrained_path:
        raise ConfigError("backbone 'nss' has no weights to load (pretrained_path must be empty)")
    return NSSFeatures()

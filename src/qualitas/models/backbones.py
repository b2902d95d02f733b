"""Backbones: a thin adapter over timm feature extractors, plus local weight loading.

Nothing is downloaded: a backbone is randomly initialised or loaded from a file given as
``pretrained_path`` (``.pth``/``.pt`` read with ``torch.load(weights_only=True)``, or
``.safetensors``). timm, torchvision, Lightning and qualitas checkpoints are accepted:
the leading prefix that best matches (``module.``, ``model.backbone.`` ...) is stripped, classifier
weights dropped, and a 3-channel first convolution is adapted when the backbone takes
more channels (the 6-channel full-reference input).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from qualitas.errors import ConfigError, DependencyError, one_line
from qualitas.registry import Registry, did_you_mean

log = logging.getLogger("qualitas.models")

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbones")
"""Non-timm backbones added by plug-ins (entry-point group ``qualitas.backbones``).
A builder takes ``(*, in_chans, pretrained_path)`` and returns a module mapping
``(B, C, H, W)`` to ``(B, num_features)`` with attributes ``num_features``, ``mean``,
``std``."""

RECOMMENDED_BACKBONES = (
    "resnet18",
    "resnet50",
    "mobilenetv3_small_100",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "efficientnet_b3",
    "efficientnet_b7",
    "densenet121",
    "mnasnet_100",
    "resnest50d",
    "convnext_tiny",
)
"""Tested families (any other timm model name works too). ``test_resnet`` is a 0.4M
parameter ResNet used by the tests."""

_STATE_KEYS = ("state_dict", "model", "model_state_dict", "module", "net", "params")


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


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file safely and unwrap the usual containers -> flat ``{name: tensor}``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pretrained_path '{p}' does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(p), device="cpu")
        else:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to parse the file is the user's file
        raise ConfigError(f"cannot read weights file '{p}': {one_line(err)}") from None
    # Unwrap {"state_dict": {...}} / {"model": {...}} containers (Lightning, DeiT, ...).
    for _ in range(3):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _STATE_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping):
        raise ConfigError(f"weights file '{p}' holds no state dict ({type(obj).__name__})")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise ConfigError(f"weights file '{p}' holds no tensors")
    return sd


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


def load_weights(
    module: nn.Module,
    path: str | Path,
    *,
    first_conv: str | None = None,
    ignore: tuple[str, ...] = (),
) -> LoadReport:
    """Load matching tensors of a weights file into ``module`` (non-strict, reported).

    ``first_conv`` names the input convolution: a 3-channel weight is adapted (timm's
    ``adapt_input_conv``) when ``module`` takes another number of channels. Keys starting
    with a prefix in ``ignore`` (e.g. a classifier) are dropped silently. Tensors whose
    shape differs are skipped and listed. Raises ``ConfigError`` if nothing matches.
    """
    sd = read_state_dict(path)
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
            if is_input_conv and value.ndim == 4 and value.shape[0] == target.shape[0]:
                from timm.models import adapt_input_conv

                value = adapt_input_conv(target.shape[1], value)
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
    return report


def hub_weights_error(name: str) -> ConfigError:
    return ConfigError(
        f"pretrained=true for backbone '{name}' would download weights from a model hub, and "
        "qualitas downloads nothing at run time; download the weights file yourself and pass "
        "pretrained_path=/path/to/weights.pth (or .safetensors)"
    )


class TimmBackbone(nn.Module):
    """A timm model as a pooled feature extractor: ``(B, in_chans, H, W) -> (B, num_features)``.

    The timm network sits in ``self.net`` with its own parameter names, so timm or
    torchvision weights load into it unchanged. ``mean``/``std`` are the normalisation
    the architecture was designed with (timm's ``pretrained_cfg``), used by the models.
    """

    def __init__(
        self,
        name: str,
        *,
        in_chans: int = 3,
        pretrained: bool = False,
        pretrained_path: str | None = None,
    ) -> None:
        super().__init__()
        timm = _timm()
        if not timm.is_model(name):
            raise ConfigError(
                f"unknown backbone '{name}'"
                f"{did_you_mean(name, list(RECOMMENDED_BACKBONES) + timm.list_models())}; "
                f"tested: {', '.join(RECOMMENDED_BACKBONES)}"
            )
        if pretrained and not pretrained_path:
            raise hub_weights_error(name)
        self.name = name
        self.net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
        cfg = self.net.pretrained_cfg
        # Width of the pooled output: MobileNetV3 & co. have a conv head after pooling, so
        # it can differ from ``num_features`` (the last feature map's channels).
        self.num_features = int(getattr(self.net, "head_hidden_size", None) or self.net.num_features)
        self.mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
        self.first_conv = cfg.get("first_conv")
        self.load_report: LoadReport | None = None
        if pretrained_path:
            classifier = cfg.get("classifier")
            ignore = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
            self.load_report = load_weights(
                self.net, pretrained_path, first_conv=self.first_conv, ignore=ignore
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` normalised images -> ``(B, num_features)`` pooled features."""
        return self.net(x)


def create_backbone(
    name: str,
    *,
    in_chans: int = 3,
    pretrained: bool = False,
    pretrained_path: str | None = None,
) -> nn.Module:
    """Plug-in backbone by name if registered, else a timm model by name."""
    if name in BACKBONES:
        if pretrained and not pretrained_path:
            raise hub_weights_error(name)
        return BACKBONES.get(name)(in_chans=in_chans, pretrained_path=pretrained_path)
    return TimmBackbone(name, in_chans=in_chans, pretrained=pretrained, pretrained_path=pretrained_path)

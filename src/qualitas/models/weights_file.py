"""Reading a weights file (``.pth``/``.pt`` with ``torch.load(weights_only=True)``, or
``.safetensors``) into a flat state dict, and the backbone families we test. Below both
``backbones`` and ``pretrained``, which each need them (no import cycle between the two)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from qualitas.errors import ConfigError, one_line

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

PRETRAIN_BACKBONE = "backbone.pt"
"""The clean backbone a ``qualitas pretrain`` run writes (weights only, timm names)."""


def weights_file(path: str | Path) -> Path:
    """A weights file as given, or the clean backbone of a pretraining run directory."""
    p = Path(path).expanduser()
    if p.is_dir():
        if (p / PRETRAIN_BACKBONE).is_file():
            return p / PRETRAIN_BACKBONE
        raise ConfigError(
            f"pretrained_path '{p}' is a folder without {PRETRAIN_BACKBONE} (not a pretrain run)"
        )
    return p


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file safely and unwrap the usual containers -> flat ``{name: tensor}``.

    A ``qualitas pretrain`` run directory stands for its ``backbone.pt``."""
    p = weights_file(path)
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

"""Quality models: timm backbones, heads, temporal modules and the model families.

``build_model(name, **kwargs)`` builds a registered model (``nr_iqa``, ``fr_iqa``,
``nr_vqa``, ``fr_vqa``). Every model is a plain ``nn.Module`` taking RGB in ``[0, 1]``
(normalisation inside) with a ``spec`` (:class:`ModelSpec`) and ``bins``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

# Explicit imports: each module registers its components.
from qualitas.models import importance, iqa, nss, vision, vqa  # noqa: F401
from qualitas.models.backbones import BACKBONES, create_backbone, list_backbones, load_weights
from qualitas.models.heads import HEADS, expected_score, to_score
from qualitas.models.registry import MODELS, WEIGHT_ARGS, check_kwargs
from qualitas.models.spec import ModelSpec
from qualitas.models.temporal import TEMPORAL_POOLS, temporal_shift

__all__ = [
    "BACKBONES",
    "HEADS",
    "MODELS",
    "TEMPORAL_POOLS",
    "ModelSpec",
    "build_model",
    "create_backbone",
    "expected_score",
    "list_backbones",
    "list_models",
    "load_weights",
    "model_from_spec",
    "temporal_shift",
    "to_score",
]


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; unknown keywords are a ``ConfigError``."""
    builder = MODELS.get(name)
    check_kwargs(builder, kwargs, f"model '{name}'")
    return builder(**kwargs)


def list_models() -> list[str]:
    return MODELS.names()


def model_from_spec(spec: ModelSpec | dict[str, Any]) -> nn.Module:
    """Rebuild the (randomly initialised) network a card describes; load its weights after."""
    if isinstance(spec, dict):
        spec = ModelSpec.from_dict(spec)
    kwargs = {k: v for k, v in spec.build_kwargs.items() if k not in WEIGHT_ARGS}
    return build_model(spec.arch, **kwargs)

"""Quality models: timm backbones, heads, temporal modules and the model families.

``build_model(name, **kwargs)`` builds a registered model (``nr_iqa``, ``fr_iqa``,
``nr_vqa``, ``fr_vqa``; task models ``classifier``, ``segmenter``, ``detector``). Every model is a plain ``nn.Module`` taking RGB in ``[0, 1]``
(normalisation inside) with a ``spec`` (:class:`ModelSpec`) and ``bins``.
"""

from __future__ import annotations

# Explicit imports: each module registers its components.
from qualitas.models import detection, importance, iqa, nss, vision, vqa  # noqa: F401
from qualitas.models.backbones import BACKBONES, create_backbone, list_backbones, load_weights
from qualitas.models.heads import HEADS, expected_score, to_score
from qualitas.models.registry import (
    MODELS,
    WEIGHT_ARGS,
    build_model,
    check_kwargs,
    list_models,
    model_from_spec,
)
from qualitas.models.spec import ModelSpec
from qualitas.models.temporal import TEMPORAL_POOLS, temporal_shift

__all__ = [
    "BACKBONES",
    "HEADS",
    "MODELS",
    "TEMPORAL_POOLS",
    "WEIGHT_ARGS",
    "ModelSpec",
    "build_model",
    "check_kwargs",
    "create_backbone",
    "expected_score",
    "list_backbones",
    "list_models",
    "load_weights",
    "model_from_spec",
    "temporal_shift",
    "to_score",
]

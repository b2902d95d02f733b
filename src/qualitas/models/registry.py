"""The model registry and keyword checking shared by the builders."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from qualitas.errors import ConfigError
from qualitas.registry import Registry, did_you_mean

MODELS: Registry[Callable[..., nn.Module]] = Registry("models")
"""Model builders: keyword-only typed arguments, return an ``nn.Module`` with ``.spec``."""

WEIGHT_ARGS = ("pretrained", "pretrained_path")
"""Builder arguments that only say where initial weights come from; left off the card
because a rebuilt model gets its weights from the checkpoint instead."""


def check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], what: str) -> None:
    """Raise ``ConfigError`` naming an unknown keyword and the closest valid one."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in kwargs:
        if key not in valid:
            raise ConfigError(
                f"{what} has no argument '{key}'{did_you_mean(key, valid)}; valid: {', '.join(valid)}"
            )


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; unknown keywords are a ``ConfigError``.

    The builders register themselves when ``qualitas.models`` is imported (its
    ``__init__`` imports every family), which happens before any of its submodules loads."""
    builder = MODELS.get(name)
    check_kwargs(builder, kwargs, f"model '{name}'")
    return builder(**kwargs)


def list_models() -> list[str]:
    return MODELS.names()


def model_from_spec(spec: Any) -> nn.Module:
    """Rebuild the (randomly initialised) network a card (``ModelSpec`` or its dict)
    describes; load its weights after."""
    from qualitas.models.spec import ModelSpec

    if isinstance(spec, dict):
        spec = ModelSpec.from_dict(spec)
    kwargs = {k: v for k, v in spec.build_kwargs.items() if k not in WEIGHT_ARGS}
    return build_model(spec.arch, **kwargs)


def card_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Builder arguments to record in ``ModelSpec.build_kwargs`` (JSON-friendly)."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in WEIGHT_ARGS:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out

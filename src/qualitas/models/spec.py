"""The model card every qualitas model carries as ``model.spec``.

Export and the scoring runtime read it to know what a model takes and returns without
importing training code: full-reference or not, image or video, the input convention
and the output kind. ``arch`` + ``build_kwargs`` rebuild the same network
(:func:`qualitas.models.model_from_spec`), so a checkpoint plus its card is enough.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OUTPUT_KINDS = ("score", "distribution")

# Built-in default: ImageNet statistics (what timm's ResNets, EfficientNets... expect).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """What a model takes and returns.

    Input convention (all qualitas models): RGB ``float32`` in ``[0, 1]``; the
    ``(x - mean) / std`` normalisation is applied *inside* the model (a registered
    buffer), so exported models take the same ``[0, 1]`` tensors as the data pipeline.
    """

    arch: str
    """Registry name of the builder, e.g. ``"nr_iqa"``."""
    backbone: str
    full_reference: bool
    video: bool
    output: str
    """``"score"`` -> ``(B,)``; ``"distribution"`` -> ``(B, N)`` probabilities over ``bins``."""
    in_channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    normalized_inside: bool = True
    bins: tuple[float, ...] | None = None
    num_frames: int | None = None
    """Video: frames per clip the model was built for (``None`` for images)."""
    fixed_num_frames: bool = False
    """Video: ``True`` when the clip length must equal ``num_frames`` (TSM models)."""
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the builder (weights-file arguments removed)."""

    @property
    def input_signature(self) -> str:
        shape = "(B,T,3,H,W)" if self.video else "(B,3,H,W)"
        return f"(dist {shape}, ref {shape})" if self.full_reference else shape

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["bins"] = list(self.bins) if self.bins is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        if d.get("bins") is not None:
            d["bins"] = tuple(float(v) for v in d["bins"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

"""Metric metadata and the metric registry.

Each metric module defines a pure function on tensors plus a small class that carries
its :class:`MetricInfo` and calls the function; the class registers itself in
``METRICS``. ``qualitas.metrics`` imports every metric module explicitly.

Two kinds of metric exist:

* ``kind="frames"``: computed on decoded frames, batched in torch. ``__call__(dist, ref)``
  takes ``(B, 3, H, W)`` float tensors in ``[0, 1]`` (RGB) and returns ``(B,)`` scores.
* ``kind="files"``: computed by an external tool on whole files (VMAF through libvmaf);
  the scoring runtime calls ``score_files`` instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

from qualitas.registry import Registry


@dataclass(frozen=True)
class MetricInfo:
    """Properties of a metric, declared next to its code."""

    name: str
    full_reference: bool
    higher_is_better: bool
    range: tuple[float, float]
    input: str
    """What the metric needs, in words, e.g. "RGB frames; computed on BT.601 luma"."""
    kind: str = "frames"
    """"frames" (tensor metric) or "files" (external tool on whole files)."""
    reference: str = ""
    """The implementation it reproduces, and the tolerance verified by the tests."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["range"] = list(self.range)
        return d


class Metric:
    """Base class: subclasses set ``info`` and implement ``forward``."""

    info: ClassVar[MetricInfo]

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """Score a batch: ``dist``/``ref`` are ``(B, 3, H, W)`` in ``[0, 1]``; returns ``(B,)``."""
        if self.info.full_reference and ref is None:
            raise ValueError(f"{self.info.name} is a full-reference metric and needs a reference")
        dist = dist.to(self.device)
        ref = ref.to(self.device) if ref is not None else None
        return self.forward(dist, ref)


METRICS: Registry[type[Metric]] = Registry("metrics")

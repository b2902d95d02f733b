"""Prepared inputs: the per-stream inputs of shared-input metrics
(:class:`qualitas.metrics.base.SharedInputMetric`: SSIM, MS-SSIM, PSNR-Y), made once per
batch from RGB or luma, refined per metric, possibly in the stream's decoding thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qualitas.metrics.base import LumaInputMetric, RefinedInputMetric, SharedInputMetric, shares_input
from qualitas.runtime.options import INPUT_ERRORS

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    import torch


class _StreamPrep:
    """Per-stream inputs of a run's shared-input metrics (:class:`SharedInputMetric`, e.g.
    SSIM, MS-SSIM, PSNR-Y), computed from one stream's batch, RGB or luma.

    Each shared input is made once per batch (``prepare(rgb)``, or ``prepare_luma(luma)``
    when ``use_luma``) and refined per metric (:class:`RefinedInputMetric`: SSIM's
    downsampling, MS-SSIM's scales). All of it depends on one stream only, so
    :meth:`attach` runs it in that stream's decoding thread. ``use_luma`` applies only when
    every such metric is a :class:`LumaInputMetric`; the others read RGB as before.
    """

    def __init__(self, frame: Mapping[str, Any], use_luma: bool) -> None:
        self.metrics: dict[str, SharedInputMetric] = {name: m for name, m in frame.items() if shares_input(m)}
        self.luma_capable = bool(self.metrics) and all(
            isinstance(m, LumaInputMetric) for m in self.metrics.values()
        )
        self.use_luma = use_luma and self.luma_capable

    def needs_rgb(self, frame: Mapping[str, Any]) -> bool:
        """Whether any metric of ``frame`` still reads the RGB batch."""
        return not self.use_luma or any(name not in self.metrics for name in frame)

    def _make(self, source: torch.Tensor, luma: bool) -> dict[str, Any]:
        shared: dict[str, Any] = {}
        out: dict[str, Any] = {}
        for name, metric in self.metrics.items():
            # A failure is kept for the metric that needs it (raised when it is scored), so
            # that one metric's refusal does not fail the stream for the others.
            try:
                key = metric.shared_input
                if key not in shared:
                    shared[key] = metric.prepare_luma(source) if luma else metric.prepare(source)  # type: ignore[attr-defined]
                if isinstance(shared[key], _Failed):
                    out[name] = shared[key]
                    continue
                out[name] = (
                    metric.refine(shared[key]) if isinstance(metric, RefinedInputMetric) else shared[key]
                )
            except INPUT_ERRORS as err:
                out[name] = _Failed(err)
                shared.setdefault(metric.shared_input, out[name])
        return out

    def from_rgb(self, rgb: torch.Tensor) -> dict[str, Any]:
        return self._make(rgb, luma=False)

    def from_luma(self, luma: torch.Tensor) -> dict[str, Any]:
        return self._make(luma, luma=True)

    def of_batch(self, batch: Any) -> dict[str, Any]:
        return self.from_luma(batch.luma) if self.use_luma else self.from_rgb(batch.data)

    def attach(self, batches: Iterable[Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """``(batch, prepared)`` for each batch (run it in the producing thread)."""
        for batch in batches:
            yield batch, self.of_batch(batch)

    @staticmethod
    def scorer(metric: SharedInputMetric) -> Callable[[Any, Any], torch.Tensor]:
        """The function that scores a pair of this metric's prepared inputs."""
        return metric.score_refined if isinstance(metric, RefinedInputMetric) else metric.score_prepared


@dataclass(frozen=True)
class _Failed:
    """A per-stream prepared input whose preparation raised ``error`` (see :meth:`_StreamPrep._make`)."""

    error: BaseException


def _take(value: Any, n: int) -> Any:
    """The first ``n`` items of the batch axis of a prepared input (tensors, lists, tuples, dicts)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value if value.dim() == 0 else value[:n]
    if isinstance(value, dict):
        return {k: _take(v, n) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_take(v, n) for v in value)
    return value


def _split(item: Any) -> tuple[Any, dict[str, Any] | None]:
    """A frame-loop item -> (FrameBatch or None, prepared inputs or None)."""
    if isinstance(item, tuple):
        return item
    return item, None

"""Metric metadata and the metric registry.

Each metric module defines a pure function on tensors plus a small class that carries
its :class:`MetricInfo` and calls the function; the class registers itself in
``METRICS``. ``qualitas.metrics`` imports every metric module explicitly.

Two kinds of metric exist:

* ``kind="frames"``: computed on decoded frames, batched in torch. ``__call__(dist, ref)``
  takes ``(B, 3, H, W)`` float tensors in ``[0, 1]`` (RGB) and returns ``(B,)`` scores.
* ``kind="files"``: computed by an external tool on whole files (VMAF through libvmaf);
  the scoring runtime calls ``score_files`` instead (:class:`FileMetric`).

Optional capabilities a scoring engine uses are declared here as protocols, not discovered
by probing attributes: :class:`SharedInputMetric` (scored from a prepared input that several
metrics share, e.g. the MATLAB gray of SSIM and MS-SSIM), :class:`LumaInputMetric` (that
input also from the stored Y plane of YUV video), :class:`RefinedInputMetric` (per-stream
work of its own on it) and :class:`FileMetric` (whole files, per-frame scores).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from qualitas.registry import Registry

if TYPE_CHECKING:  # annotations only: metric modules import torch where they use it
    import torch

F = TypeVar("F", bound=Callable[..., Any])


def no_grad(fn: F) -> F:
    """``torch.no_grad()`` as a decorator that imports torch only when ``fn`` is called (a
    metric module must be importable without torch: the YUV fast path of ``qualitas score``
    does not load it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


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
        self.device_name = str(device)
        """The device as text (``"cpu"``, ``"cuda:0"``), readable without importing torch."""
        self._device: torch.device | None = None

    @property
    def device(self) -> torch.device:
        """The ``torch.device`` the metric runs on (torch is imported on first use)."""
        if self._device is None:
            import torch

            self._device = torch.device(self.device_name)
        return self._device

    @device.setter
    def device(self, value: str | torch.device) -> None:
        self.device_name, self._device = str(value), None

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    @no_grad
    def __call__(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """Score a batch: ``dist``/``ref`` are ``(B, 3, H, W)`` in ``[0, 1]``; returns ``(B,)``."""
        if self.info.full_reference and ref is None:
            raise ValueError(f"{self.info.name} is a full-reference metric and needs a reference")
        dist = dist.to(self.device)
        ref = ref.to(self.device) if ref is not None else None
        return self.forward(dist, ref)


@runtime_checkable
class SharedInputMetric(Protocol):
    """A frame metric that can be scored from a prepared per-stream input.

    ``shared_input`` names the input (metrics naming the same one share it: it is made once
    per batch); ``prepare(rgb (B,3,H,W))`` makes it from one stream's batch and
    ``score_prepared(prepare(d), prepare(r))`` equals ``metric(d, r)``.
    """

    shared_input: str

    def prepare(self, x: torch.Tensor) -> Any: ...

    def score_prepared(self, dist: Any, ref: Any) -> torch.Tensor: ...


@runtime_checkable
class LumaInputMetric(SharedInputMetric, Protocol):
    """A shared-input metric that also makes its input from normalised luma ``(B,1,H,W)`` (the
    Y plane of YUV video, no RGB conversion; docs/metrics.md "Luma of YUV video")."""

    def prepare_luma(self, luma: torch.Tensor) -> Any: ...


@runtime_checkable
class RefinedInputMetric(SharedInputMetric, Protocol):
    """A shared-input metric with per-stream work of its own on the shared input
    (``refine``: SSIM's downsampling, MS-SSIM's scales), which an engine may run in the
    stream's decoding thread; ``score_refined(refine(a), refine(b))`` is the pair score."""

    def refine(self, shared: Any) -> Any: ...

    def score_refined(self, dist: Any, ref: Any) -> torch.Tensor: ...


class FileScores(Protocol):
    """What a files metric returns: ``frames`` as ``(index, time, score)`` per scored frame
    (``index`` counts decoded frames from 0, before ``frame_step``)."""

    frames: Sequence[Any]


@runtime_checkable
class FileMetric(Protocol):
    """A metric (or model) that scores whole files (``info.kind == "files"``).

    ``score_files(dist, ref, *, frame_step, max_frames, yuv_dist, yuv_ref)``: ``frame_step``
    and ``max_frames`` select frames as ``qualitas score`` does (every ``frame_step``-th
    decoded frame, at most ``max_frames`` of them); ``yuv_*`` are raw-YUV specs or None.
    """

    info: MetricInfo

    def score_files(
        self,
        dist: Any,
        ref: Any,
        *,
        frame_step: int = 1,
        max_frames: int | None = None,
        yuv_dist: Any = None,
        yuv_ref: Any = None,
    ) -> FileScores: ...


def shares_input(metric: object) -> bool:
    """Whether ``metric`` is a :class:`SharedInputMetric` that names a shared input."""
    return isinstance(metric, SharedInputMetric) and metric.shared_input is not None


METRICS: Registry[type[Metric]] = Registry("metrics")

"""Options and result types of a scoring run: :class:`ScoreOptions`, :class:`Result` (one
row of the output) with its :class:`FrameScores`, and the one :class:`Pair` (from
:mod:`qualitas.io.pairing`) that :func:`collect` makes of files and folders."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qualitas.errors import QualitasError, UsageError
from qualitas.io.pairing import Pair

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    pass

POOLS = ("mean", "harmonic_mean", "min", "p5")


SIZE_POLICIES = ("scale", "error")


BATCH_PIXEL_BUDGET = 1920 * 1080 * 4
"""Automatic batch size: frames per batch so that one batch holds about this many pixels
(4 frames of 1080p, 1 frame of 4K): enough to amortise per-call overhead, small enough that
memory does not grow with resolution."""


MAX_AUTO_BATCH = 32

# Errors that a bad input file can raise while being read, decoded or scored: recorded per
# file. Anything else (TypeError, KeyError...) is a bug and propagates.
INPUT_ERRORS: tuple[type[BaseException], ...] = (QualitasError, ValueError, OSError, RuntimeError, EOFError)


@dataclass(frozen=True)
class ScoreOptions:
    """Everything that controls a scoring run besides the inputs and metric names."""

    frame_step: int = 1
    max_frames: int | None = None
    pool: str = "mean"
    device: str = "cpu"
    batch_size: int | None = None
    """Frames per metric batch; ``None`` picks it from :data:`BATCH_PIXEL_BUDGET`."""
    jobs: int = 1
    threads: int | None = None
    """torch intra-op threads for the frame metrics; ``None``: :func:`torch_threads_for`."""
    on_size_mismatch: str = "scale"
    allow_fps_mismatch: bool = False
    vmaf_model: str | None = None
    vmaf_threads: int | None = None
    yuv: Any = None
    """``qualitas.io.yuv.RawYUVSpec`` for raw ``.yuv`` inputs (dist, and ref unless ``ref_yuv``)."""
    ref_yuv: Any = None
    prefetch: bool = True
    """Decode in background threads while the metrics run (off: everything in one thread)."""
    raise_errors: bool = False
    """Re-raise per-file errors instead of recording them (``--debug``)."""

    def yuv_for(self, path: str | os.PathLike, *, is_ref: bool = False) -> Any:
        """The raw-YUV spec that applies to ``path``: only ``.yuv`` files get one."""
        if not str(path).lower().endswith(".yuv"):
            return None
        return (self.ref_yuv or self.yuv) if is_ref else self.yuv

    def metric_kwargs(self, name: str) -> dict[str, Any]:
        """The registered metric ``name``'s own settings from these options (``--vmaf-model``,
        ``--vmaf-threads``); ``{}`` for metrics without any."""
        if name != "vmaf":
            return {}
        kwargs: dict[str, Any] = {"threads": self.vmaf_threads or 0}  # 0: libvmaf uses every core
        if self.vmaf_model is not None:
            kwargs["model"] = self.vmaf_model
        return kwargs

    def validate(self) -> None:
        """Raise :class:`UsageError` for out-of-range values."""
        if self.pool not in POOLS:
            raise UsageError(f"unknown pooling '{self.pool}'; choose from {', '.join(POOLS)}")
        if self.on_size_mismatch not in SIZE_POLICIES:
            raise UsageError(
                f"unknown size policy '{self.on_size_mismatch}'; choose from {', '.join(SIZE_POLICIES)}"
            )
        for name in ("frame_step", "jobs"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_frames", "batch_size", "vmaf_threads", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        if self.device.startswith("cuda") and not _cuda_available():
            raise UsageError("--device cuda was asked for but torch sees no CUDA device")

    def to_dict(self) -> dict:
        """The options that affect scores, for the output document."""
        return {
            "frame_step": self.frame_step,
            "max_frames": self.max_frames,
            "pool": self.pool,
            "on_size_mismatch": self.on_size_mismatch,
            "allow_fps_mismatch": self.allow_fps_mismatch,
            "vmaf_model": self.vmaf_model,
        }


@dataclass
class FrameScores:
    """Scores of one video frame (``index`` counts decoded frames from 0, before ``frame_step``)."""

    index: int
    time: float | None
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"index": self.index, "time": self.time, "scores": dict(self.scores)}


@dataclass
class Result:
    """The outcome for one input (one row of the output)."""

    path: str
    ref: str | None = None
    kind: str | None = None
    width: int | None = None
    height: int | None = None
    frames_scored: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    frames: list[FrameScores] | None = None
    error: str | None = None
    dist_frames: int | None = None
    ref_frames: int | None = None
    scaled_from: tuple[int, int] | None = None
    """(width, height) of the distorted input when it was scaled to the reference size."""
    notes: list[str] = field(default_factory=list)
    metric_errors: dict[str, str] = field(default_factory=dict)
    """Metric name -> one-line reason, for metrics that failed on this input while others
    were scored (the file's own failures go to ``error``)."""
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    """Videos: metric name -> summary of its per-frame scores (:func:`frame_stats`)."""

    @property
    def ok(self) -> bool:
        """Every requested metric was scored (no file error, no metric error)."""
        return self.error is None and not self.metric_errors

    @property
    def partial(self) -> bool:
        """Some metrics were scored and some failed."""
        return self.error is None and bool(self.metric_errors)

    def to_dict(self) -> dict:
        """Plain-Python form following docs/output-schema.md (floats not yet JSON-escaped)."""
        return {
            "path": self.path,
            "ref": self.ref,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "frames_scored": self.frames_scored,
            "scores": dict(self.scores),
            "frames": None if self.frames is None else [f.to_dict() for f in self.frames],
            "error": self.error,
            "dist_frames": self.dist_frames,
            "ref_frames": self.ref_frames,
            "scaled_from": None if self.scaled_from is None else list(self.scaled_from),
            "notes": list(self.notes),
            "metric_errors": dict(self.metric_errors),
            "stats": {k: dict(v) for k, v in self.stats.items()},
        }


def collect(dists: Sequence[str | os.PathLike], ref: str | os.PathLike | None) -> list[Pair]:
    """Expand files/folders into pairs (``qualitas.io.pairing.collect_pairs``), paths as text."""
    from qualitas.io.pairing import collect_pairs

    return [
        Pair(str(p.dist), None if p.ref is None else str(p.ref), p.error)
        for p in collect_pairs([Path(d) for d in dists], None if ref is None else Path(ref))
    ]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()

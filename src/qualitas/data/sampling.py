"""Which frames of a video a training/evaluation clip uses.

Pure functions on frame counts: they return frame indices, never decode. In training the
offsets are random (drawn from an explicit ``torch.Generator`` so runs are reproducible);
in evaluation they are deterministic (centred), so validation figures do not jitter.

- ``uniform``: K segments of equal length, one frame per segment (TSN/TSM style).
- ``clip``: K consecutive frames (every ``step``-th), one contiguous window.
- ``step``: every ``step``-th frame from the start, at most K of them (K=0: all).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qualitas.errors import ConfigError

SAMPLING_MODES = ("uniform", "clip", "step")


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[0, high)`` (``high >= 1``)."""
    return int(torch.randint(high, (1,), generator=generator).item())


def uniform_segments(
    num_frames: int, k: int, *, train: bool, generator: torch.Generator | None = None
) -> list[int]:
    """One frame from each of ``k`` equal segments of ``[0, num_frames)``.

    Train: a random frame inside each segment. Eval: each segment's middle frame.
    Videos shorter than ``k`` frames repeat frames (indices stay sorted).
    """
    if num_frames < 1 or k < 1:
        raise ConfigError(f"uniform sampling needs num_frames >= 1 and k >= 1, got {num_frames}, {k}")
    out = []
    for i in range(k):
        lo = (i * num_frames) // k
        hi = max(lo + 1, ((i + 1) * num_frames) // k)
        out.append(lo + _randint(hi - lo, generator) if train else (lo + hi - 1) // 2)
    return [min(i, num_frames - 1) for i in out]


def consecutive_clip(
    num_frames: int, length: int, *, step: int = 1, train: bool, generator: torch.Generator | None = None
) -> list[int]:
    """``length`` frames spaced ``step`` apart in one window.

    Train: random start. Eval: the window is centred. A short video repeats its last frame.
    """
    if num_frames < 1 or length < 1 or step < 1:
        raise ConfigError("clip sampling needs num_frames, length and step >= 1")
    span = (length - 1) * step + 1
    slack = max(0, num_frames - span)
    start = _randint(slack + 1, generator) if train else slack // 2
    return [min(start + i * step, num_frames - 1) for i in range(length)]


def frame_step(
    num_frames: int, step: int, *, max_frames: int = 0, train: bool, generator: torch.Generator | None = None
) -> list[int]:
    """Every ``step``-th frame (at most ``max_frames``; 0 = no limit).

    Train: a random phase in ``[0, step)``. Eval: phase 0.
    """
    if num_frames < 1 or step < 1:
        raise ConfigError("step sampling needs num_frames and step >= 1")
    phase = _randint(min(step, num_frames), generator) if train else 0
    idx = list(range(phase, num_frames, step))
    if max_frames > 0:
        if len(idx) > max_frames:
            # Keep a window of max_frames, random in training, centred in eval.
            slack = len(idx) - max_frames
            first = _randint(slack + 1, generator) if train else slack // 2
            idx = idx[first : first + max_frames]
        idx += [idx[-1]] * (max_frames - len(idx))  # fixed T so clips batch together
    return idx


@dataclass(frozen=True)
class ClipSampling:
    """How to pick frames: ``mode`` in uniform|clip|step, ``num_frames`` (K), ``step``."""

    mode: str = "uniform"
    num_frames: int = 8
    step: int = 1

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ConfigError(
                f"unknown sampling mode '{self.mode}'; choose one of {', '.join(SAMPLING_MODES)}"
            )
        if self.num_frames < 0 or self.step < 1:
            raise ConfigError("sampling needs num_frames >= 0 and step >= 1")
        if self.mode != "step" and self.num_frames < 1:
            raise ConfigError(f"sampling mode '{self.mode}' needs num_frames >= 1")

    def indices(self, total: int, *, train: bool, generator: torch.Generator | None = None) -> list[int]:
        """Frame indices (sorted, in ``[0, total)``) for a video of ``total`` frames."""
        if self.mode == "uniform":
            return uniform_segments(total, self.num_frames, train=train, generator=generator)
        if self.mode == "clip":
            return consecutive_clip(total, self.num_frames, step=self.step, train=train, generator=generator)
        return frame_step(total, self.step, max_frames=self.num_frames, train=train, generator=generator)

    def eval_clips(self, total: int, n: int) -> list[list[int]]:
        """``n`` deterministic clips spread over the video (for per-video aggregation).

        ``n == 1`` is the centred clip; more clips shift the window across the video.
        """
        if n <= 1 or self.mode == "uniform" and total <= self.num_frames:
            return [self.indices(total, train=False)]
        if self.mode == "uniform":
            # Shift each segment's pick: clip j takes the j/n-th position inside every segment.
            out = []
            for j in range(n):
                clip = []
                for i in range(self.num_frames):
                    lo = (i * total) // self.num_frames
                    hi = max(lo + 1, ((i + 1) * total) // self.num_frames)
                    clip.append(min(lo + ((hi - lo) * (2 * j + 1)) // (2 * n), total - 1))
                out.append(clip)
            return out
        span = (self.num_frames - 1) * self.step + 1 if self.mode == "clip" else total
        if self.mode == "step" or span >= total:
            return [self.indices(total, train=False)]
        starts = [round(j * (total - span) / (n - 1)) for j in range(n)]
        return [[s + i * self.step for i in range(self.num_frames)] for s in starts]

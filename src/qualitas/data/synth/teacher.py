"""Full-reference teacher labels for synthetic data, on a 0-100 scale (higher is better).

Images: each configured FR metric is mapped linearly from its [lo, hi] anchors to [0, 100]
(clipped), and the teacher score is the weighted mean of the mapped values. The default,
``ms_ssim:0.6:1.0 + psnr:18:45`` (equal weights), puts a pristine image at 100 and the
strongest KADID-like levels near 0-20. The mapping is deliberately simple; change it with
``--teacher`` (``name:lo:hi[:weight],...``). ``lo > hi`` works for lower-is-better metrics.

Videos: VMAF (libvmaf, ``vmaf_v0.6.1`` by default), mean over frames, clipped to [0, 100].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from qualitas.errors import ConfigError, UsageError

DEFAULT_ANCHORS: dict[str, tuple[float, float]] = {
    "psnr": (18.0, 45.0),
    "psnr_y": (20.0, 48.0),
    "ssim": (0.5, 1.0),
    "ms_ssim": (0.6, 1.0),
    "vif": (0.0, 1.0),  # both VIFs: 1 for a copy, towards 0 as information is lost
    "vifp": (0.0, 1.0),
    "fsim": (0.7, 1.0),
    "gmsd": (0.35, 0.0),
}
"""Default [lo, hi] anchors (metric value mapped to 0 and to 100) for ``name`` without numbers."""


@dataclass(frozen=True)
class MetricMapping:
    """Linear map of one metric's value to 0-100: ``100 * clip((v - lo) / (hi - lo), 0, 1)``."""

    metric: str
    lo: float
    hi: float
    weight: float = 1.0

    def __call__(self, value: torch.Tensor) -> torch.Tensor:
        return 100.0 * ((value.to(torch.float64) - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)

    def spec(self) -> str:
        return f"{self.metric}:{self.lo:g}:{self.hi:g}:{self.weight:g}"


@dataclass(frozen=True)
class ImageTeacherConfig:
    """Which FR metrics make the image teacher score, and how each maps to 0-100."""

    mappings: tuple[MetricMapping, ...] = (
        MetricMapping("ms_ssim", 0.6, 1.0),
        MetricMapping("psnr", 18.0, 45.0),
    )

    def __post_init__(self) -> None:
        if not self.mappings:
            raise UsageError("the image teacher needs at least one metric")
        for m in self.mappings:
            if m.lo == m.hi or m.weight <= 0:
                raise UsageError(f"teacher metric {m.metric}: need lo != hi and weight > 0")

    @classmethod
    def parse(cls, spec: str) -> ImageTeacherConfig:
        """Parse ``"ms_ssim,psnr"`` or ``"ms_ssim:0.6:1:2,psnr:18:45"`` (name[:lo:hi[:weight]])."""
        out = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            fields = part.split(":")
            name = fields[0]
            try:
                nums = [float(f) for f in fields[1:]]
            except ValueError:
                raise UsageError(f"--teacher: {part!r} is not name[:lo:hi[:weight]]") from None
            if len(nums) == 0:
                if name not in DEFAULT_ANCHORS:
                    raise UsageError(
                        f"--teacher: no default anchors for {name!r}; write {name}:LO:HI "
                        f"(defaults exist for {', '.join(DEFAULT_ANCHORS)})"
                    )
                lo, hi, weight = *DEFAULT_ANCHORS[name], 1.0
            elif len(nums) in (2, 3):
                lo, hi = nums[0], nums[1]
                weight = nums[2] if len(nums) == 3 else 1.0
            else:
                raise UsageError(f"--teacher: {part!r} is not name[:lo:hi[:weight]]")
            out.append(MetricMapping(name, lo, hi, weight))
        return cls(tuple(out))

    def spec(self) -> str:
        return ",".join(m.spec() for m in self.mappings)


def combine(raw: dict[str, torch.Tensor], config: ImageTeacherConfig) -> torch.Tensor:
    """Weighted mean of the mapped metric values: ``{name: (B,)} -> (B,)`` in [0, 100]."""
    total = sum(m.weight for m in config.mappings)
    return sum(m.weight * m(raw[m.metric]) for m in config.mappings) / total


class ImageTeacher:
    """Scores distorted images against their reference with the configured FR metrics."""

    def __init__(self, config: ImageTeacherConfig, device: str = "cpu") -> None:
        from qualitas.metrics import get_metric

        self.config = config
        self.metrics = {}
        for m in config.mappings:
            metric = get_metric(m.metric, device=device)
            info = metric.info
            if not info.full_reference or getattr(info, "kind", "frames") != "frames":
                raise ConfigError(f"teacher metric {m.metric!r} must be a full-reference metric on frames")
            self.metrics[m.metric] = metric

    @torch.no_grad()
    def __call__(self, dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``dist`` (B,3,H,W) and ``ref`` (3,H,W) or (B,3,H,W) in [0,1] -> (score (B,), raw values)."""
        if ref.dim() == 3:
            ref = ref.unsqueeze(0)
        ref = ref.expand_as(dist)
        raw = {name: metric(dist, ref).to(torch.float64).reshape(-1) for name, metric in self.metrics.items()}
        return combine(raw, self.config), raw


@dataclass(frozen=True)
class VideoTeacherConfig:
    model: str = "vmaf_v0.6.1"
    threads: int = 0


def vmaf_label(
    dist: str | os.PathLike, ref: str | os.PathLike, config: VideoTeacherConfig
) -> tuple[float, dict]:
    """VMAF of ``dist`` vs ``ref``: (mean clipped to [0, 100], libvmaf's pooled scores)."""
    from qualitas.metrics.vmaf import score_files

    res = score_files(Path(dist), Path(ref), model=config.model, threads=config.threads)
    mean = float(res.pooled["mean"])
    return min(100.0, max(0.0, mean)), {k: float(v) for k, v in res.pooled.items()}

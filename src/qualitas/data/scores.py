"""Opinion scores: the MOS normalisation fitted on the training split, and a record's MOS."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from qualitas.data.manifest import Record
from qualitas.errors import ConfigError

NORM_KINDS = ("none", "minmax", "zscore")


@dataclass(frozen=True)
class ScoreNorm:
    """MOS normalisation ``t = (mos - shift) / scale``, fit on the training split.

    ``none``: identity; ``minmax``: to ``[0, 1]`` (from ``score_range`` when given, else the
    training min/max); ``zscore``: zero mean, unit std of the training MOS.
    """

    kind: str = "none"
    shift: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(
        cls, kind: str, mos: Sequence[float], score_range: tuple[float, float] | None = None
    ) -> ScoreNorm:
        if kind not in NORM_KINDS:
            raise ConfigError(f"unknown MOS normalisation '{kind}'; choose one of {', '.join(NORM_KINDS)}")
        vals = torch.tensor([m for m in mos if m is not None and math.isfinite(m)], dtype=torch.float64)
        if kind == "none":
            return cls()
        if kind == "minmax":
            lo, hi = (
                score_range
                if score_range is not None
                else ((float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0))
            )
            return cls("minmax", float(lo), float(hi - lo) if hi > lo else 1.0)
        if len(vals) < 2:
            return cls("zscore", float(vals.mean()) if len(vals) else 0.0, 1.0)
        std = float(vals.std())
        return cls("zscore", float(vals.mean()), std if std > 0 else 1.0)

    def forward(self, mos: torch.Tensor | float) -> torch.Tensor | float:
        return (mos - self.shift) / self.scale

    def inverse(self, t: torch.Tensor | float) -> torch.Tensor | float:
        """Back to MOS units (used whenever predictions are reported)."""
        return t * self.scale + self.shift

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shift": self.shift, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> ScoreNorm:
        return cls(str(d.get("kind", "none")), float(d.get("shift", 0.0)), float(d.get("scale", 1.0)))


def record_mos(rec: Record, bins: Sequence[float] | None = None) -> float:
    """The record's MOS, or the mean of its vote histogram (bins ``1..N`` by default); NaN if none."""
    if rec.mos is not None:
        return float(rec.mos)
    if rec.votes:
        b = list(bins) if bins is not None else list(range(1, len(rec.votes) + 1))
        total = sum(rec.votes)
        if len(b) == len(rec.votes) and total > 0:
            return float(sum(v * x for v, x in zip(rec.votes, b)) / total)
    return float("nan")


# --------------------------------------------------------------------------- media loading

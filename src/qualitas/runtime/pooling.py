"""Pooling per-frame scores into one number per metric, and the per-frame summary."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qualitas.errors import UsageError
from qualitas.runtime.options import POOLS


def pool_scores(values: Sequence[float] | np.ndarray, method: str, higher_is_better: bool = True) -> float:
    """Pool per-frame scores into one number.

    * ``mean``: arithmetic mean.
    * ``harmonic_mean``: libvmaf's definition ``n / sum(1 / (x + 1)) - 1`` (the ``+1`` keeps
      zero scores finite); it leans towards low values.
    * ``min``: the worst frame (the maximum for lower-is-better metrics).
    * ``p5``: the 5th percentile in the worse direction (the 95th for lower-is-better
      metrics), nearest-rank, so an ``inf`` frame never turns into ``nan``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan
    if method == "mean":
        return float(x.mean())
    if method == "harmonic_mean":
        with np.errstate(divide="ignore"):
            return float(x.size / np.sum(1.0 / (x + 1.0)) - 1.0)
    if method == "min":
        return float(x.min() if higher_is_better else x.max())
    if method == "p5":
        if higher_is_better:
            return float(np.percentile(x, 5, method="lower"))
        return float(np.percentile(x, 95, method="higher"))
    raise UsageError(f"unknown pooling '{method}'; choose from {', '.join(POOLS)}")


def frame_stats(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Summary of one metric's per-frame scores: ``n, mean, min, max, std`` (population),
    ``p5, p25, p50, p75, p95`` (linear interpolation, as numpy and ffmpeg-quality-metrics)
    and ``harmonic_mean`` (libvmaf's ``n / sum(1/(x+1)) - 1``)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return {}
    with np.errstate(invalid="ignore", over="ignore"):
        out = {
            "n": int(x.size),
            "mean": float(x.mean()),
            "min": float(x.min()),
            "max": float(x.max()),
            "std": float(x.std()),
        }
        for q in (5, 25, 50, 75, 95):
            out[f"p{q}"] = float(np.percentile(x, q))
    out["harmonic_mean"] = pool_scores(x, "harmonic_mean")
    return out

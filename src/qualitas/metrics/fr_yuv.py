"""PSNR, PSNR-Y, SSIM and MS-SSIM of planar YUV video straight from the decoded planes.

The scoring engine's fast path for these metrics (``qualitas score`` on two YUV videos of
the same size): the same definitions and the same float32 per-pixel values as the metric
classes in :mod:`qualitas.metrics.psnr` / :mod:`qualitas.metrics.ssim` fed by the engine's
reference path (RGB from ``yuv_to_rgb`` for ``psnr``; the Y plane, "Luma of YUV video" in
docs/metrics.md, for the others), computed by the fused kernels of
:mod:`qualitas.functional.yuv_kernels` instead of full-size tensor passes:

* ``psnr``: MSE over the R, G, B of each pixel as ``yuv_to_rgb`` converts it (the definition
  is RGB; the conversion is fused into the error sum, no RGB frame is made);
* ``psnr_y``: studio-range Y from the Y plane (ffmpeg's Y-plane PSNR for 8-bit video);
* ``ssim`` / ``ssim_nodownsample`` / ``ms_ssim``: gray ``255 * Y'`` of the Y plane, ``ssim.m``'s
  downsampling / none / ``msssim.m``'s five 2x2-averaged scales, 11-tap gaussian 'valid'.

Per-stream work (gray, downsampling, scales) is :meth:`YuvFrameScorer.prepare`, which an
engine runs in each stream's decoding thread; :meth:`YuvFrameScorer.score` takes both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qualitas.errors import MediaError
from qualitas.io._convert import MATRICES
from qualitas.metrics.psnr import PSNR, PSNR_CAP_DB, PSNRY
from qualitas.metrics.ssim import (
    K1,
    K2,
    MS_SSIM_WEIGHTS,
    MSSSIM,
    SSIM,
    WIN_SIGMA,
    WIN_SIZE,
    L,
    SSIMNoDownsample,
    check_ms_ssim_size,
    check_ssim_size,
    ssim_downsample_factor,
)

FAST_ENV = "QUALITAS_YUV_FAST"
"""Environment variable: ``0`` turns the fast path off (the engine then converts frames to
tensors as before; for comparisons and tests)."""

# Metric name -> the class whose definition the fast path reproduces (exact classes only:
# a subclass or another scorer under the same name keeps the general path).
FAST_METRICS: dict[str, type] = {
    "psnr": PSNR,
    "psnr_y": PSNRY,
    "ssim": SSIM,
    "ssim_nodownsample": SSIMNoDownsample,
    "ms_ssim": MSSSIM,
}


def fast_path_enabled() -> bool:
    """Whether the YUV fast path may be used: not turned off by ``QUALITAS_YUV_FAST=0`` and numba importable."""
    if os.environ.get(FAST_ENV, "").strip() == "0":
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


# The methods whose definitions the fast path reproduces; a class whose method was replaced
# at run time (a patch, a wrapper) keeps the general path, which calls the replacement.
_REPRODUCED = ("forward", "prepare", "prepare_luma", "refine", "score_refined", "score_prepared")


def _unmodified(cls: type) -> bool:
    for attr in _REPRODUCED:
        fn = getattr(cls, attr, None)
        if fn is None:
            continue
        module, qualname = getattr(fn, "__module__", ""), getattr(fn, "__qualname__", "")
        if not module.startswith("qualitas.metrics.") or "<locals>" in qualname or "." not in qualname:
            return False
    return True


def serves(frame_metrics: Mapping[str, Any]) -> bool:
    """Whether every metric of ``frame_metrics`` ({name: metric object}) is one the fast path computes
    (the registered class itself, its methods as defined in ``qualitas.metrics``, on cpu)."""
    if not frame_metrics:
        return False
    for name, metric in frame_metrics.items():
        cls = FAST_METRICS.get(name)
        if cls is None or type(metric) is not cls or not _unmodified(cls):
            return False
        if metric.device_name != "cpu":
            return False
    return True


@dataclass
class PreparedYuv:
    """One stream's per-frame inputs (:meth:`YuvFrameScorer.prepare`)."""

    planes: Any
    rgb_params: np.ndarray
    ssim: np.ndarray | BaseException | None = None
    gray: np.ndarray | BaseException | None = None
    pyramid: list[np.ndarray] | BaseException | None = None
    size: tuple[int, int] = (0, 0)


class YuvFrameScorer:
    """Scores frame pairs of planar YUV video with any of :data:`FAST_METRICS`.

    ``prepare(planes)`` (one stream, any thread) -> :class:`PreparedYuv`;
    ``score(dist, ref)`` -> {name: value or the exception that metric raised for this pair}.
    Values equal the metric classes' on the engine's reference inputs to float32 rounding
    (sums in float64 in another order; tested).
    """

    def __init__(self, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in FAST_METRICS]
        if unknown:
            raise ValueError(f"not computed by the YUV fast path: {', '.join(unknown)}")
        from qualitas.functional import yuv_kernels

        self._k = yuv_kernels
        self.names = tuple(names)
        self._taps = yuv_kernels.gaussian_taps(WIN_SIZE, WIN_SIGMA)
        self._c1 = np.float32((K1 * L) ** 2)
        self._c2 = np.float32((K2 * L) ** 2)
        self._params: dict[tuple, np.ndarray] = {}

    def _rgb_params(self, bits: int, full: bool, matrix: str) -> np.ndarray:
        key = (bits, full, matrix)
        p = self._params.get(key)
        if p is None:
            kr, kb = MATRICES[matrix]
            p = self._params[key] = self._k.rgb_params(bits, full, kr, kb)
        return p

    def prepare(self, planes: Any) -> PreparedYuv:
        """Per-stream work of one frame's :class:`~qualitas.io.video.YuvPlanes`: gray, SSIM's
        downsampling, MS-SSIM's scales (those the metrics need). Size errors are kept for the
        metric that has them (raised by :meth:`score`), so the other metrics still score."""
        k = self._k
        h, w = planes.height, planes.width
        out = PreparedYuv(planes, self._rgb_params(planes.bit_depth, planes.full_range, planes.matrix))
        out.size = (h, w)
        lp = out.rgb_params[:2]
        if "ssim" in self.names:
            f = ssim_downsample_factor(h, w)
            try:
                check_ssim_size(-(-h // f), -(-w // f), (h, w))
                out.ssim = k.gray255_downsampled(planes.y, w, lp, f)
            except MediaError as err:
                out.ssim = err
        want_ms = "ms_ssim" in self.names
        if "ssim_nodownsample" in self.names or want_ms:
            gray = k.gray255(planes.y, w, lp)
            out.gray = gray
            if "ssim_nodownsample" in self.names:
                try:
                    check_ssim_size(h, w, (h, w))
                except MediaError as err:
                    out.gray = err
            if want_ms:
                try:
                    check_ms_ssim_size(h, w, len(MS_SSIM_WEIGHTS))
                    pyramid = [gray]
                    for _ in range(len(MS_SSIM_WEIGHTS) - 1):
                        pyramid.append(k.box_downsample_2d(pyramid[-1], 2))
                    out.pyramid = pyramid
                except MediaError as err:
                    out.pyramid = err
        return out

    def attach(self, frames: Iterable[Any]) -> Iterator[tuple[Any, PreparedYuv]]:
        """``(frame, prepared)`` for each :class:`~qualitas.io.video.YuvFrame` (run it in the decoding thread)."""
        for frame in frames:
            yield frame, self.prepare(frame.planes)

    def _ssim_mean(self, x: np.ndarray, y: np.ndarray, want_s: bool = True) -> tuple[float, float]:
        s, c, n = self._k.ssim_sums(x, y, self._taps, self._c1, self._c2, want_s)
        return s / n, c / n

    def score(self, dist: PreparedYuv, ref: PreparedYuv) -> dict[str, float | BaseException]:
        """Scores of one frame pair: {name: float, or the ``MediaError`` of that metric}."""
        if dist.size != ref.size:
            raise MediaError(
                f"frame sizes differ mid-stream: {dist.size[1]}x{dist.size[0]} vs {ref.size[1]}x{ref.size[0]}"
            )
        a, b = dist.planes, ref.planes
        if (a.dy, a.dx) != (b.dy, b.dx):
            raise MediaError("chroma subsampling differs between the two videos")
        h, w = dist.size
        out: dict[str, float | BaseException] = {}
        want_rgb, want_y = "psnr" in self.names, "psnr_y" in self.names
        # psnr_y of two streams of the same format: integer error sums (exact); else float32
        # as the reference path converts each stream.
        int_y = want_y and (a.bit_depth, a.full_range) == (b.bit_depth, b.full_range)
        if want_rgb or (want_y and not int_y):
            sse_rgb, sse_y = self._k.yuv_sq_errors(
                a.y, a.u, a.v, b.y, b.u, b.v, w, dist.rgb_params, ref.rgb_params, a.dy, a.dx,
                want_rgb, want_y and not int_y,
            )  # fmt: skip
            if want_rgb:
                out["psnr"] = _psnr(sse_rgb / (3 * h * w))
        if int_y:
            lo, hi, scale = self._k.studio_y_params(a.bit_depth, a.full_range)
            sse_y = float(self._k.y_sq_error_int(a.y, b.y, w, lo, hi)) * scale * scale
        if want_y:
            out["psnr_y"] = _psnr(sse_y / (h * w))
        if "ssim" in self.names:
            out["ssim"] = self._pair(
                dist.ssim, ref.ssim, lambda x, y: float(np.float32(self._ssim_mean(x, y)[0]))
            )
        if "ssim_nodownsample" in self.names:
            out["ssim_nodownsample"] = self._pair(
                dist.gray, ref.gray, lambda x, y: float(np.float32(self._ssim_mean(x, y)[0]))
            )
        if "ms_ssim" in self.names:
            out["ms_ssim"] = self._pair(dist.pyramid, ref.pyramid, self._ms_ssim)
        return out

    @staticmethod
    def _pair(x: Any, y: Any, fn) -> float | BaseException:
        for side in (x, y):
            if isinstance(side, BaseException):
                return side
        return fn(x, y)

    def _ms_ssim(self, xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
        levels = len(MS_SSIM_WEIGHTS)
        values = []
        for level, (x, y) in enumerate(zip(xs, ys)):
            last = level == levels - 1
            s, c = self._ssim_mean(x, y, want_s=last)
            values.append(s if last else c)
        # As ms_ssim_pyramids: a negative mean contrast-structure is clamped to 0.
        v = np.maximum(np.array(values, dtype=np.float64), 0.0)
        return float(np.prod(v ** np.array(MS_SSIM_WEIGHTS, dtype=np.float64)))


def _psnr(mse: float) -> float:
    """``psnr_from_mse`` with peak 1 and the 100 dB cap."""
    if mse <= 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(1.0 / mse))

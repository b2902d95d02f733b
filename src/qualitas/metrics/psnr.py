"""PSNR on RGB (all channels) and on BT.601 luma.

Inputs are ``(B, 3, H, W)`` in ``[0, 1]`` (integer samples divided by ``2**b - 1``), so the
peak is 1.0, equivalent to a peak of ``2**b - 1`` on the integer samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qualitas.functional.color import BT601_Y_OFFSET, rgb_to_y_bt601
from qualitas.metrics.base import METRICS, Metric, MetricInfo, no_grad

if TYPE_CHECKING:  # annotations only: torch is imported in the functions that use it
    import torch

PSNR_CAP_DB = 100.0
"""Score reported for identical inputs (and any PSNR above it): JSON cannot hold inf."""


def _check_pair(dist: torch.Tensor, ref: torch.Tensor) -> None:
    if dist.dim() != 4 or dist.shape[1] not in (1, 3):
        raise ValueError(f"expected (B,3,H,W) or (B,1,H,W), got {tuple(dist.shape)}")
    if dist.shape != ref.shape:
        raise ValueError(f"dist and ref shapes differ: {tuple(dist.shape)} vs {tuple(ref.shape)}")


CHUNK_PIXELS = 32 * 1920
"""Pixels per row chunk in :func:`mse` on CPU (32 rows of 1080p): the squared differences of
one chunk live in a small reused buffer, never as a full-size temporary (whose fresh pages
cost more than the arithmetic: 9.7 -> 2.6 ms per 1080p RGB frame)."""


def mse(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean squared error per item over all channels and pixels: (B,C,H,W) x2 -> (B,) float64."""
    import torch

    _check_pair(dist, ref)
    b, c, h, w = dist.shape
    count = c * h * w
    grad = torch.is_grad_enabled() and (dist.requires_grad or ref.requires_grad)
    if grad or dist.device.type != "cpu" or dist.dtype != ref.dtype:
        diff = dist - ref
        # Row sums in the input precision (pairwise summation, ~1e-7 relative), then float64
        # for the mean over millions of pixels, which must not lose the small MSE of good pairs.
        rows = diff.square().sum(dim=-1).to(torch.float64)
        return rows.flatten(1).sum(dim=1) / count
    # Chunk sums in the input precision (pairwise, ~1e-7 relative), then float64 over chunks.
    rows = max(1, min(h, CHUNK_PIXELS // max(1, w)))
    buf = torch.empty(c * rows * w, dtype=dist.dtype)
    out = torch.empty(b, dtype=torch.float64)
    for i in range(b):
        parts = []
        for r0 in range(0, h, rows):
            n = min(rows, h - r0)
            t = buf[: c * n * w].view(c, n, w)
            torch.sub(dist[i, :, r0 : r0 + n], ref[i, :, r0 : r0 + n], out=t)
            parts.append(t.square_().sum())
        out[i] = torch.stack(parts).to(torch.float64).sum()
    return out / count


def psnr_from_mse(err: torch.Tensor, peak: float = 1.0, max_db: float | None = PSNR_CAP_DB) -> torch.Tensor:
    """10 log10(peak^2 / mse); mse == 0 -> inf, or ``max_db`` when given (values above it too)."""
    import torch

    with torch.no_grad():
        out = 10.0 * torch.log10(torch.as_tensor(peak, dtype=torch.float64) ** 2 / err)
    if max_db is not None:
        out = out.clamp(max=max_db)
    return out


def psnr(
    dist: torch.Tensor, ref: torch.Tensor, *, peak: float = 1.0, max_db: float | None = PSNR_CAP_DB
) -> torch.Tensor:
    """PSNR in dB of ``dist`` vs ``ref`` (B,C,H,W) -> (B,) float64, MSE over all channels.

    Identical inputs give ``max_db`` (100 dB by default); ``max_db=None`` returns ``inf``.
    """
    return psnr_from_mse(mse(dist, ref), peak, max_db)


def psnr_y(
    dist: torch.Tensor, ref: torch.Tensor, *, max_db: float | None = PSNR_CAP_DB, full_range: bool = False
) -> torch.Tensor:
    """PSNR in dB on BT.601 luma of RGB (B,3,H,W) -> (B,) float64.

    Studio-range Y (MATLAB ``rgb2ycbcr``) by default, peak 1.0 (= 255 on 8-bit samples): this
    is the Y that 8-bit BT.601 video stores, so it matches ffmpeg's ``psnr`` filter on Y.
    """
    y_d = rgb_to_y_bt601(dist, full_range=full_range)
    y_r = rgb_to_y_bt601(ref, full_range=full_range)
    return psnr_from_mse(mse(y_d, y_r), 1.0, max_db)


@METRICS.register("psnr")
class PSNR(Metric):
    info = MetricInfo(
        name="psnr",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, PSNR_CAP_DB),
        input="RGB frames; MSE over all channels, peak from bit depth",
        reference="10*log10(peak^2/MSE) as ffmpeg psnr (RGB average); identical inputs -> 100 dB",
    )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return psnr(dist, ref)


SHARED_Y_BT601 = "y_bt601_studio"
"""Name of the prepared input of ``psnr_y``: studio-range BT.601 Y in [0, 1] (B,1,H,W)."""


@METRICS.register("psnr_y")
class PSNRY(Metric):
    info = MetricInfo(
        name="psnr_y",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, PSNR_CAP_DB),
        input="RGB frames (BT.601 studio-range luma, MATLAB rgb2ycbcr Y); YUV video: its Y plane",
        reference="ffmpeg psnr filter on the Y plane of 8-bit video; identical inputs -> 100 dB",
    )
    shared_input = SHARED_Y_BT601

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) RGB in [0,1] -> studio-range BT.601 Y (B,1,H,W) (MATLAB ``rgb2ycbcr``)."""
        import torch

        with torch.no_grad():
            return rgb_to_y_bt601(x.to(self.device))

    def prepare_luma(self, luma: torch.Tensor) -> torch.Tensor:
        """Normalised Y' (B,1,H,W) of a YUV video -> the same studio-range Y: 16/255 + 219/255 Y'
        (what :meth:`prepare` gives for a pixel with neutral chroma; for 8-bit limited-range
        video that is the stored Y / 255)."""
        import torch

        with torch.no_grad():
            return luma.to(self.device, torch.float32) * (219.0 / 255.0) + BT601_Y_OFFSET

    @no_grad
    def score_prepared(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return psnr_from_mse(mse(dist, ref), 1.0, PSNR_CAP_DB)

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        return psnr_y(dist, ref)

"""Luma straight from the Y plane (``iter_batches(luma=True)``, ``yuv_luma``): exact values
from lossless clips, the same numbers as the RGB conversion for neutral chroma, rotation,
RGB skipped on request, and a clear error for formats without a Y plane (budget: ~2 s)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from io_helpers import encode_planes, ffmpeg, random_planes

from media_helpers import write_video
from qualitas.errors import MediaError, UsageError
from qualitas.io._convert import has_luma_plane, yuv_luma, yuv_to_rgb
from qualitas.io.video import iter_batches, iter_decoded_batches, probe_video

H, W = 32, 48


def expected_luma(y: np.ndarray, bits: int, full_range: bool = False) -> np.ndarray:
    """Textbook normalised Y' in float64, clamped to [0, 1]."""
    unit = 2 ** (bits - 8)
    if full_range:
        return np.clip(y / (2**bits - 1), 0, 1)
    return np.clip((y.astype(np.float64) - 16 * unit) / (219 * unit), 0, 1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("luma")
    out = {}
    for pix_fmt, codec, ext in [("yuv420p", "libx264", "mp4"), ("yuv420p10le", "ffv1", "mkv")]:
        bits = 10 if "10" in pix_fmt else 8
        frames = [random_planes(H, W, bits, "420", seed=i, block=2) for i in range(3)]
        out[pix_fmt] = (encode_planes(root / f"{pix_fmt}.{ext}", frames, pix_fmt, codec), frames, bits)
    return out


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_luma_is_the_y_plane(clips, pix_fmt: str) -> None:
    path, frames, bits = clips[pix_fmt]
    (batch,) = iter_batches(path, 3, rgb=False, luma=True)
    assert batch.data is None and batch.luma.shape == (3, 1, H, W) and batch.luma.dtype == torch.float32
    for got, (y, _, _) in zip(batch.luma, frames):
        np.testing.assert_allclose(got[0].numpy(), expected_luma(y, bits), rtol=0, atol=1e-6)
    # Both planes at once: the RGB batch is the one iter_batches always gave.
    (both,) = iter_batches(path, 3, luma=True)
    (rgb,) = iter_batches(path, 3)
    assert torch.equal(both.data, rgb.data) and torch.equal(both.luma, batch.luma)


@pytest.mark.parametrize("bits, full_range", [(8, False), (10, False), (8, True)])
def test_luma_equals_rgb_conversion_for_neutral_chroma(bits: int, full_range: bool) -> None:
    rng = np.random.default_rng(bits)
    y = rng.integers(
        0, 2**bits, (16, 24), dtype=np.uint16 if bits > 8 else np.uint8
    )  # below 16 and above 235 too
    neutral = np.full((8, 12), 2 ** (bits - 1), dtype=y.dtype)
    rgb = yuv_to_rgb(y, neutral, neutral, bit_depth=bits, matrix="bt709", full_range=full_range)
    luma = yuv_luma(y, bit_depth=bits, full_range=full_range)
    for c in range(3):  # bit for bit, clipping included
        assert torch.equal(rgb[c], luma)


def test_luma_follows_rotation(tmp_path, clips) -> None:
    src, _, _ = clips["yuv420p"]
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(src), "-c", "copy", str(rotated))
    (plain,) = iter_batches(src, 3, luma=True)
    (turned,) = iter_batches(rotated, 3, luma=True)
    assert turned.luma.shape == (3, 1, W, H)
    assert torch.equal(turned.luma, torch.rot90(plain.luma, k=1, dims=(2, 3)))


def test_decoded_batches_convert_luma_late(clips) -> None:
    path, _, _ = clips["yuv420p"]
    (decoded,) = iter_decoded_batches(path, 3)
    late = decoded.to_batch(rgb=False, luma=True)
    (direct,) = iter_batches(path, 3, rgb=False, luma=True)
    assert late.data is None and torch.equal(late.luma, direct.luma)


def test_luma_needs_a_y_plane(tmp_path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, H, W, 3), dtype=np.uint8)
    path = tmp_path / "rgb.mkv"
    write_video(path, frames, codec="ffv1", pix_fmt="bgr0")  # an RGB format: no Y plane to read
    assert not has_luma_plane(probe_video(path).pix_fmt) and has_luma_plane("yuv420p10le")
    with pytest.raises(MediaError, match="no Y plane"):
        next(iter_batches(path, 2, rgb=False, luma=True))
    with pytest.raises(UsageError):
        next(iter_batches(path, 2, rgb=False))

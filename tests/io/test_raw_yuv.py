"""Raw .yuv input: spec validation, sizes, streamed selection, same RGB as an encoded copy."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from io_helpers import SUBSAMPLING, encode_planes, random_planes, reference_rgb, upsample

from qualitas.errors import MediaError, UsageError
from qualitas.io.video import iter_batches, iter_frames, probe_video
from qualitas.io.yuv import RawYUVSpec, parse_fps, parse_size

H, W = 18, 26


def write_raw(path, frames, bits: int):
    dtype = "<u2" if bits > 8 else np.uint8
    with open(path, "wb") as fh:
        for planes in frames:
            for p in planes:
                fh.write(p.astype(dtype).tobytes())
    return path


@pytest.mark.parametrize(
    "pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"]
)
def test_raw_frames_exact(tmp_path, pix_fmt):
    bits = 10 if "10" in pix_fmt else 8
    sub = pix_fmt[3:6]
    frames = [random_planes(H, W, bits, sub, seed=i) for i in range(4)]
    path = write_raw(tmp_path / "clip.yuv", frames, bits)
    spec = RawYUVSpec(W, H, pix_fmt, 25)
    info = probe_video(path, yuv=spec)
    assert (info.width, info.height, info.num_frames, info.bit_depth) == (W, H, 4, bits)
    assert (
        info.fps_fraction == Fraction(25) and info.duration == pytest.approx(0.16) and info.matrix == "bt601"
    )
    got = list(iter_frames(path, yuv=spec))
    assert [f.index for f in got] == [0, 1, 2, 3]
    np.testing.assert_allclose([f.time for f in got], [0, 0.04, 0.08, 0.12])
    dx, dy = SUBSAMPLING[sub]
    for f, (y, u, v) in zip(got, frames):
        ref = reference_rgb(y, upsample(u, dx, dy, H, W), upsample(v, dx, dy, H, W), bits, "bt601")
        np.testing.assert_allclose(f.data.numpy(), ref, rtol=0, atol=2e-6)


def test_raw_equals_lossless_encode(tmp_path):
    # A raw reference and an encoded copy of the same planes must give identical RGB.
    frames = [random_planes(32, 48, 8, "420", seed=i, block=2) for i in range(3)]
    raw = write_raw(tmp_path / "ref.yuv", frames, 8)
    enc = encode_planes(tmp_path / "dist.mp4", frames, "yuv420p")
    a = torch.stack([f.data for f in iter_frames(raw, yuv=RawYUVSpec(48, 32, "yuv420p", 25))])
    b = torch.stack([f.data for f in iter_frames(enc)])
    assert torch.equal(a, b)


def test_matrix_default_by_height_and_override(tmp_path):
    assert RawYUVSpec(1280, 720).matrix_name == "bt709"
    assert RawYUVSpec(1280, 719).matrix_name == "bt601"
    frames = [random_planes(H, W, 8, "444", seed=9)]
    path = write_raw(tmp_path / "c.yuv", frames, 8)
    spec = RawYUVSpec(W, H, "yuv444p", 25, matrix="bt709", full_range=True)
    (f,) = iter_frames(path, yuv=spec)
    np.testing.assert_allclose(
        f.data.numpy(), reference_rgb(*frames[0], 8, "bt709", full_range=True), atol=2e-6
    )


def test_selection_and_batches(tmp_path):
    frames = [random_planes(H, W, 8, "420", seed=i) for i in range(10)]
    path = write_raw(tmp_path / "c.yuv", frames, 8)
    spec = RawYUVSpec(W, H, "yuv420p", "30000/1001")
    assert [f.index for f in iter_frames(path, yuv=spec, frame_step=3)] == [0, 3, 6, 9]
    assert [f.index for f in iter_frames(path, yuv=spec, start=0.1, max_frames=2)] == [3, 4]
    assert [f.index for f in iter_frames(path, yuv=spec, end=0.1)] == [0, 1, 2]
    batches = list(iter_batches(path, 4, yuv=spec, frame_step=2))
    assert [b.indices for b in batches] == [[0, 2, 4, 6], [8]]
    full = [f.data for f in iter_frames(path, yuv=spec)]
    assert torch.equal(batches[1].data[0], full[8])


def test_partial_trailing_frame(tmp_path):
    path = write_raw(tmp_path / "c.yuv", [random_planes(H, W, 8, "420")] * 2, 8)
    with open(path, "ab") as fh:
        fh.write(b"\x00" * 100)
    spec = RawYUVSpec(W, H, "yuv420p", 25)
    frame_bytes = H * W + 2 * (H // 2) * (W // 2)
    for call in (lambda: probe_video(path, yuv=spec), lambda: next(iter_frames(path, yuv=spec))):
        with pytest.raises(MediaError, match="2 frames \\+ 100 bytes") as err:
            call()
        assert str(frame_bytes) in str(err.value) and "--size" in str(err.value)


def test_yuv_without_spec_says_what_to_pass(tmp_path):
    path = tmp_path / "c.yuv"
    path.write_bytes(b"\x10" * 100)
    with pytest.raises(MediaError, match="--size WxH --pix-fmt .* --fps"):
        probe_video(path)
    with pytest.raises(MediaError, match="--size WxH"):
        next(iter_frames(path))


def test_parse_helpers_and_spec_validation():
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_size(" 64X48 ") == (64, 48)
    for bad in ("1920", "0x10", "axb", "1920x1080x3", "-5x4"):
        with pytest.raises(UsageError):
            parse_size(bad)
    assert parse_fps("30000/1001") == Fraction(30000, 1001)
    assert parse_fps("29.97") == Fraction(2997, 100)
    for bad in ("0", "-1", "abc", "1/0"):
        with pytest.raises(UsageError):
            parse_fps(bad)
    with pytest.raises(UsageError, match="yuv420p"):
        RawYUVSpec(64, 48, "nv12")
    with pytest.raises(UsageError):
        RawYUVSpec(0, 48)
    with pytest.raises(UsageError):
        RawYUVSpec(64, 48, matrix="bt999")
    spec = RawYUVSpec(63, 47, "yuv420p10le", 25.0)
    assert spec.plane_shapes() == [(47, 63), (24, 32), (24, 32)]
    assert spec.frame_bytes == (47 * 63 + 2 * 24 * 32) * 2

"""Video reading: exact pixels from lossless encodes, probing, frame selection, seeking,
batches, rotation metadata, truncated and bogus files."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from io_helpers import SUBSAMPLING, encode_planes, encode_rgb, ffmpeg, random_planes, reference_rgb, upsample

from qualitas.errors import MediaError, UsageError
from qualitas.io.video import iter_batches, iter_frames, iter_lazy_frames, probe_video

H, W = 32, 48


def expected_rgb(planes, pix_fmt: str, matrix: str) -> np.ndarray:
    y, u, v = planes
    dx, dy = SUBSAMPLING[pix_fmt[3:6]]
    bits = 10 if "10" in pix_fmt else 8
    h, w = y.shape
    return reference_rgb(y, upsample(u, dx, dy, h, w), upsample(v, dx, dy, h, w), bits, matrix)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Lossless clips of known planes: {name: (path, [planes per frame])}."""
    root = tmp_path_factory.mktemp("clips")
    out = {}
    for pix_fmt, codec, ext in [
        ("yuv420p", "libx264", "mp4"),
        ("yuv422p", "libx264", "mp4"),
        ("yuv444p", "libx264", "mp4"),
        ("yuv420p10le", "ffv1", "mkv"),
        ("yuv444p10le", "ffv1", "mkv"),
    ]:
        bits = 10 if "10" in pix_fmt else 8
        frames = [random_planes(H, W, bits, pix_fmt[3:6], seed=i, block=2) for i in range(3)]
        out[pix_fmt] = (encode_planes(root / f"{pix_fmt}.{ext}", frames, pix_fmt, codec), frames)
    return out


@pytest.fixture(scope="module")
def grey_clip(tmp_path_factory):
    """30 frames at 25 fps, key frame every 8; frame i is flat grey 20 + 4*i."""
    return encode_rgb(tmp_path_factory.mktemp("grey") / "grey.mp4", 30, gop=8)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv444p10le"])
def test_lossless_pixels_exact(clips, pix_fmt):
    path, frames = clips[pix_fmt]
    info = probe_video(path)
    assert info.pix_fmt == pix_fmt and info.bit_depth == (10 if "10" in pix_fmt else 8)
    assert info.matrix == "bt601"  # untagged, under 720 lines
    got = list(iter_frames(path))
    assert len(got) == len(frames)
    for f, planes in zip(got, frames):
        assert f.data.dtype == torch.float32 and f.data.shape == (3, H, W) and f.data.is_contiguous()
        np.testing.assert_allclose(f.data.numpy(), expected_rgb(planes, pix_fmt, "bt601"), rtol=0, atol=2e-6)


def test_colour_tag_overrides_default_matrix(tmp_path):
    frames = [random_planes(H, W, 8, "444", seed=5)]
    path = encode_planes(tmp_path / "tagged.mp4", frames, "yuv444p", colorspace=1)  # AVCOL_SPC_BT709
    assert probe_video(path).matrix == "bt709"
    (f,) = iter_frames(path)
    np.testing.assert_allclose(f.data.numpy(), expected_rgb(frames[0], "yuv444p", "bt709"), atol=2e-6)


def test_probe(grey_clip):
    info = probe_video(grey_clip)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == 25.0 and info.fps_fraction == Fraction(25)
    assert info.num_frames == 30 and info.duration == pytest.approx(1.2)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.bit_depth == 8 and info.rotation == 0


def levels(frames) -> list[int]:
    return [round((float(f.data.mean()) * 255 - 20) / 4) for f in frames]


def test_all_frames_in_order_with_timestamps(grey_clip):
    frames = list(iter_frames(grey_clip))
    assert [f.index for f in frames] == list(range(30))
    assert levels(frames) == list(range(30))  # content matches the index
    np.testing.assert_allclose([f.time for f in frames], np.arange(30) / 25.0, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, indices",
    [
        ({"frame_step": 4}, list(range(0, 30, 4))),
        ({"max_frames": 5}, [0, 1, 2, 3, 4]),
        ({"frame_step": 3, "max_frames": 4}, [0, 3, 6, 9]),
        ({"start": 0.48}, list(range(12, 30))),  # seeks (key frames every 8)
        ({"start": 0.5}, list(range(13, 30))),  # frame 12 is at 0.48 s, 13 at 0.52 s
        ({"start": 0.48, "end": 0.68}, [12, 13, 14, 15, 16]),  # end is exclusive
        ({"end": 0.2}, [0, 1, 2, 3, 4]),
        ({"start": 0.4, "frame_step": 5, "max_frames": 3}, [10, 15, 20]),
        ({"start": 0.0}, list(range(30))),
        ({"start": 5.0}, []),
        ({"max_frames": 0}, []),
    ],
)
def test_frame_selection(grey_clip, kwargs, indices):
    frames = list(iter_frames(grey_clip, **kwargs))
    assert [f.index for f in frames] == indices
    assert levels(frames) == indices  # right pixels for the index, also after a seek
    np.testing.assert_allclose([f.time for f in frames], np.array(indices) / 25.0, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [{"frame_step": 0}, {"frame_step": 1.5}, {"max_frames": -1}, {"start": -1.0}, {"start": 1.0, "end": 0.5}],
)
def test_bad_selection_arguments(grey_clip, kwargs):
    with pytest.raises(UsageError):
        list(iter_frames(grey_clip, **kwargs))


def test_batches_equal_frames(grey_clip):
    frames = list(iter_frames(grey_clip, frame_step=2))
    batches = list(iter_batches(grey_clip, 4, frame_step=2))
    assert [len(b.indices) for b in batches] == [4, 4, 4, 3]
    assert [i for b in batches for i in b.indices] == [f.index for f in frames]
    assert [t for b in batches for t in b.times] == [f.time for f in frames]
    assert batches[0].data.shape == (4, 3, 48, 64) and batches[-1].data.shape == (3, 3, 48, 64)
    assert torch.equal(torch.cat([b.data for b in batches]), torch.stack([f.data for f in frames]))
    with pytest.raises(UsageError):
        next(iter_batches(grey_clip, 0))


def test_lazy_frames_convert_to_the_same_pixels(grey_clip):
    frames = list(iter_frames(grey_clip, frame_step=3))
    lazy = [
        (i, t, convert(None)) for i, t, convert in iter_lazy_frames(grey_clip, frame_step=3) if i % 2 == 0
    ]
    assert [i for i, _, _ in lazy] == [f.index for f in frames if f.index % 2 == 0]
    for i, t, data in lazy:
        frame = next(f for f in frames if f.index == i)
        assert t == frame.time and torch.equal(data, frame.data)


def test_iteration_is_lazy(grey_clip):
    it = iter_frames(grey_clip)
    first = next(it)
    assert first.index == 0
    it.close()  # closing early releases the container without decoding the rest


def test_rotation_metadata(tmp_path, clips):
    src, _ = clips["yuv444p"]
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(src), "-c", "copy", str(rotated))  # 90 degrees anticlockwise
    info = probe_video(rotated)
    assert info.rotation == 270  # clockwise convention (the legacy "rotate" tag)
    assert (info.width, info.height) == (H, W)
    plain = [f.data for f in iter_frames(src)]
    turned = [f.data for f in iter_frames(rotated)]
    for a, b in zip(plain, turned):
        assert b.shape == (3, W, H)
        assert torch.equal(b, torch.rot90(a, k=1, dims=(1, 2)))  # anticlockwise quarter turn
    # Same orientation as ffmpeg's own autorotation (8-bit RGB there, hence the tolerance).
    raw = tmp_path / "ffmpeg.rgb"
    ffmpeg("-i", str(rotated), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", str(raw))
    ff = np.frombuffer(raw.read_bytes(), np.uint8).reshape(W, H, 3).transpose(2, 0, 1) / 255.0
    assert np.abs(ff - turned[0].numpy()).mean() < 0.03


def test_truncated_mp4_yields_frames_then_errors(tmp_path, make_video):
    path = make_video("full.mp4", n=30, size=(64, 48), faststart=True)  # index first: opens when cut
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    got = []
    with pytest.raises(MediaError) as err:
        for f in iter_frames(cut):
            got.append(f.index)
    assert 0 < len(got) < 30 and got == list(range(len(got)))
    assert "\n" not in str(err.value) and str(cut) in str(err.value)


def test_truncated_mp4_without_index_fails_to_open(tmp_path):
    path = encode_rgb(tmp_path / "full.mp4", 10)  # moov at the end: a cut loses it
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cannot open video"):
        probe_video(cut)
    with pytest.raises(MediaError):
        next(iter_frames(cut))


@pytest.mark.parametrize("case", ["empty", "text", "missing", "unsupported", "no_video"])
def test_bad_video_files(tmp_path, case):
    path = tmp_path / "bad.mp4"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("not a video at all\n" * 20)
    elif case == "unsupported":
        path = tmp_path / "bad.xyz"
        path.write_bytes(b"\x00" * 100)
    elif case == "no_video":
        path = tmp_path / "audio.mkv"
        with av.open(str(path), "w") as c:
            st = c.add_stream("pcm_s16le", rate=8000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            frame.sample_rate = 8000
            for pkt in st.encode(frame):
                c.mux(pkt)
            for pkt in st.encode():
                c.mux(pkt)
    for call in (lambda: probe_video(path), lambda: next(iter_frames(path))):
        with pytest.raises(MediaError) as err:
            call()
        assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_pts_guess_prefers_dts_when_pts_go_backwards():
    from qualitas.io.video import _PtsGuesser

    # Decoder output of an AVI with packed B-frames: pts shuffled, dts increasing.
    guess = _PtsGuesser()
    pts = [1, 2, 3, 5, 4, 6, 8, 7, 9]
    got = [guess(p, d) for p, d in zip(pts, range(1, 10))]
    assert got == [1, 2, 3, 5, 5, 6, 7, 8, 9]  # as FFmpeg's best_effort_timestamp
    clean = _PtsGuesser()
    assert [clean(p, None) for p in (0, 2, 1, 3)] == [0, 2, 1, 3]  # no dts: pts kept


def test_rgb_source_goes_through_swscale_exactly(tmp_path):
    rgb = np.random.default_rng(7).integers(0, 256, (3, 24, 40, 3), dtype=np.uint8)
    path = tmp_path / "rgb.mkv"
    with av.open(str(path), "w") as c:
        st = c.add_stream("ffv1", rate=25)
        st.width, st.height, st.pix_fmt = 40, 24, "bgr0"
        for i, arr in enumerate(rgb):
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts = i
            for pkt in st.encode(f):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    info = probe_video(path)
    assert info.pix_fmt == "bgr0" and info.matrix == "rgb"
    got = [f.data for f in iter_frames(path)]
    for g, arr in zip(got, rgb):
        np.testing.assert_array_equal(g.numpy() * 255.0, arr.transpose(2, 0, 1).astype(np.float32))
    batch = next(iter_batches(path, 3)).data
    assert torch.equal(batch, torch.stack(got))


def test_batches_reuse_buffer(grey_clip):
    fresh = [b.data.clone() for b in iter_batches(grey_clip, 8)]
    ptrs, copies = set(), []
    for b in iter_batches(grey_clip, 8, reuse_buffer=True):
        ptrs.add(b.data.data_ptr())
        copies.append(b.data.clone())
    assert len(ptrs) == 1  # one buffer for all batches
    assert all(torch.equal(a, b) for a, b in zip(fresh, copies))

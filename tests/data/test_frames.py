"""qualitas data frames: step / fps / max-frames selection, formats, resume, manifest."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from qualitas.cli.main import main
from qualitas.data.frames import FpsSampler, FrameOptions, extract_frames
from qualitas.data.manifest import read_manifest
from qualitas.errors import UsageError


def make_clip(path: Path, n: int = 12, fps: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    """A tiny H.264 clip whose frame i is a flat gray level 20*i (so frames are told apart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"crf": "10", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, fps)
        for i in range(n):
            arr = np.full((size[1], size[0], 3), (20 * i) % 256, dtype=np.uint8)
            fr = av.VideoFrame.from_ndarray(arr, format="rgb24")
            fr.pts = i
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


def test_step_writes_selected_frames_and_manifest(clip, tmp_path):
    res = extract_frames(clip, tmp_path, FrameOptions(step=3), progress=False)
    assert [r.extra["index"] for r in res.records] == [0, 3, 6, 9]
    assert [r.extra["time"] for r in res.records] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert all(r.group == "clip" and r.path.startswith("clip/") for r in res.records)
    assert sorted(p.name for p in (tmp_path / "clip").glob("*.png")) == [
        "000000.png",
        "000003.png",
        "000006.png",
        "000009.png",
    ]
    back = read_manifest(tmp_path / "frames.jsonl")
    assert [r.path for r in back] == [
        "clip/000000.png",
        "clip/000003.png",
        "clip/000006.png",
        "clip/000009.png",
    ]
    # The pixels are the decoded frame (gray level 20 * index, up to codec rounding).
    from PIL import Image

    px = np.asarray(Image.open(tmp_path / "clip/000006.png"))
    assert abs(int(px.mean()) - 120) <= 3


def test_fps_and_max_frames(clip, tmp_path):
    res = extract_frames(clip, tmp_path / "a", FrameOptions(fps=5), progress=False)
    assert [r.extra["index"] for r in res.records] == [0, 2, 4, 6, 8, 10]
    res = extract_frames(clip, tmp_path / "b", FrameOptions(max_frames=2, fmt="jpg"), progress=False)
    assert [r.path for r in res.records] == ["clip/000000.jpg", "clip/000001.jpg"]


def test_fps_sampler_on_irregular_times():
    s = FpsSampler(2.0)
    times = [0.0, 0.1, 0.49, 0.51, 0.9, 1.0, 1.2, 1.7]
    assert [t for t in times if s.keep(t)] == [0.0, 0.51, 1.0, 1.7]


def test_resume_skips_finished_and_fills_gaps(clip, tmp_path):
    opts = FrameOptions(step=2)
    first = extract_frames(clip, tmp_path, opts, progress=False)
    assert first.written == 6 and first.skipped_videos == 0
    again = extract_frames(clip, tmp_path, opts, progress=False)
    assert again.written == 0 and again.skipped_videos == 1
    assert [r.path for r in again.records] == [r.path for r in first.records]
    # An interrupted run: the marker and one frame are gone -> only that frame is written.
    (tmp_path / "clip/.done.json").unlink()
    (tmp_path / "clip/000004.png").unlink()
    before = (tmp_path / "clip/000002.png").stat().st_mtime_ns
    third = extract_frames(clip, tmp_path, opts, progress=False)
    assert third.written == 1 and (tmp_path / "clip/000004.png").is_file()
    assert (tmp_path / "clip/000002.png").stat().st_mtime_ns == before
    # Other options are another extraction, not a skip.
    assert extract_frames(clip, tmp_path, FrameOptions(step=5), progress=False).skipped_videos == 0


def test_folder_of_videos_and_cli(tmp_path):
    src = tmp_path / "videos"
    make_clip(src / "a.mp4", n=4)
    make_clip(src / "sub" / "b.mkv", n=3)
    out = tmp_path / "frames"
    assert main(["data", "frames", str(src), "--out", str(out), "--no-progress"]) == 0
    recs = read_manifest(out / "frames.jsonl")
    assert {r.group for r in recs} == {"a", "sub/b"} and len(recs) == 7
    assert (out / "sub/b/000002.png").is_file()


def test_bad_options():
    with pytest.raises(UsageError):
        FrameOptions(step=2, fps=1.0)
    with pytest.raises(UsageError):
        FrameOptions(fmt="gif")
    assert main(["data", "frames", "/nonexistent/x", "--out", "/tmp/never"]) == 2

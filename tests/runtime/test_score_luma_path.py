"""The engine's luma fast path: SSIM, MS-SSIM and PSNR-Y of YUV video read the Y plane.

Checks that it agrees with the RGB path (rgb2gray / rgb2ycbcr of the converted frames)
within the calibration tolerance on a BT.709-tagged yuv420p clip of a real photo, that
psnr_y is then exactly PSNR on the stored Y plane (ffmpeg's rule), that RGB is not
converted when no metric needs it, and that the RGB path is kept when one file has no Y
plane or the distorted file is rescaled (budget: ~5 s).
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from qualitas.io import _convert
from qualitas.io.pairing import match_size
from qualitas.io.video import iter_frames
from qualitas.metrics import get_metric
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs

CALIBRATION_RTOL = 5e-3  # the 0.5 % of the calibration tests against Wang's MATLAB code
H, W, N = 256, 448, 3
BT709 = 1  # AVCOL_SPC_BT709: decoded with the HD matrix, whose luma rgb2gray does not undo
LUMA_METRICS = ["ssim", "ms_ssim", "psnr_y"]


def _frames(size: tuple[int, int] = (W, H)) -> np.ndarray:
    """N frames of a slow pan over skimage's astronaut photo, RGB uint8 (N, H, W, 3)."""
    from skimage import data

    img = Image.fromarray(data.astronaut())
    out = []
    for i in range(N):
        box = (8 * i, 40 + 4 * i, 8 * i + 480, 40 + 4 * i + 270)
        out.append(np.asarray(img.resize(size, Image.BICUBIC, box=box)))  # 16:9 crops
    return np.stack(out)


def _encode(
    path, frames: np.ndarray, *, crf: int = 18, codec: str = "libx264", pix_fmt: str = "yuv420p"
) -> str:
    with av.open(str(path), "w") as c:
        st = c.add_stream(codec, rate=25)
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if pix_fmt.startswith("yuv"):
            st.codec_context.colorspace = BT709
        if codec == "libx264":
            st.options = {"crf": str(crf), "preset": "ultrafast"}
        for i, arr in enumerate(frames):
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts = i
            if pix_fmt.startswith("yuv"):
                f = f.reformat(format=pix_fmt)
                f.colorspace, f.pts = BT709, i
            for pkt in st.encode(f):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return str(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("luma")
    frames = _frames()
    return {
        "ref": _encode(root / "ref.mp4", frames, crf=5),
        "dist": _encode(root / "dist.mp4", frames, crf=38),
        "ref_rgb": _encode(root / "ref_rgb.mkv", frames, codec="ffv1", pix_fmt="bgr0"),
        "dist_small": _encode(root / "dist_small.mp4", _frames((W // 2, H // 2)), crf=30),
    }


def _engine(dist: str, ref: str, names: list[str], **kw) -> dict[str, list[float]]:
    (res,), _ = score_pairs([Pair(dist, ref)], names, ScoreOptions(**kw))
    assert res.error is None and res.frames_scored == N, res.error
    return {name: [f.scores[name] for f in res.frames] for name in names}


def _rgb_path(dist: str, ref: str, names: list[str]) -> dict[str, list[float]]:
    r = torch.stack([f.data for f in iter_frames(ref)])
    d = match_size(torch.stack([f.data for f in iter_frames(dist)]), tuple(r.shape[-2:]))
    return {name: get_metric(name)(d, r).tolist() for name in names}


def _y_plane(path: str) -> np.ndarray:
    with av.open(path) as c:
        return np.stack(
            [np.frombuffer(f.planes[0], np.uint8).reshape(H, -1)[:, :W] for f in c.decode(video=0)]
        ).astype(np.float64)


@pytest.mark.parametrize("prefetch", [True, False])
def test_luma_path_agrees_with_rgb_path(clips, prefetch: bool) -> None:
    got = _engine(clips["dist"], clips["ref"], LUMA_METRICS, prefetch=prefetch)
    want = _rgb_path(clips["dist"], clips["ref"], LUMA_METRICS)
    for name in LUMA_METRICS:
        assert got[name] == pytest.approx(want[name], rel=CALIBRATION_RTOL), name
        assert got[name] != pytest.approx(want[name], rel=1e-7), f"{name}: the luma path was not used"
    assert min(got["ssim"]) < 0.95  # a real distortion, not a trivially perfect pair


def test_psnr_y_is_psnr_of_the_stored_y_plane(clips) -> None:
    got = _engine(clips["dist"], clips["ref"], ["psnr_y"])["psnr_y"]
    # ffmpeg's psnr on Y, with Y clipped to the studio range 16..235 as the RGB path does.
    yd, yr = (np.clip(_y_plane(clips[k]), 16, 235) for k in ("dist", "ref"))
    mse = ((yd - yr) ** 2).mean(axis=(1, 2))
    assert got == pytest.approx((10 * np.log10(255.0**2 / mse)).tolist(), rel=1e-6)


def test_luma_metrics_skip_the_rgb_conversion(clips, monkeypatch) -> None:
    def no_rgb(self, frame, out=None):
        raise AssertionError("RGB conversion was not needed")

    monkeypatch.setattr(_convert.FrameConverter, "__call__", no_rgb)
    got = _engine(clips["dist"], clips["ref"], LUMA_METRICS)
    assert all(0.5 < v < 1 for v in got["ms_ssim"])


def test_rgb_path_when_a_file_has_no_y_plane(clips) -> None:
    names = ["ssim", "ms_ssim", "psnr_y", "psnr"]
    got = _engine(clips["dist"], clips["ref_rgb"], names)
    want = _rgb_path(clips["dist"], clips["ref_rgb"], names)
    for name in names:  # both sides through rgb2gray: no mixing of the two luma rules
        assert got[name] == pytest.approx(want[name], rel=1e-6), name


def test_rescaled_distorted_video_uses_rescaled_luma(clips) -> None:
    got = _engine(clips["dist_small"], clips["ref"], LUMA_METRICS)
    want = _rgb_path(clips["dist_small"], clips["ref"], LUMA_METRICS)
    for name in LUMA_METRICS:
        assert got[name] == pytest.approx(want[name], rel=CALIBRATION_RTOL), name


def test_raw_yuv_gives_the_scores_of_the_mp4_it_came_from(clips, tmp_path) -> None:
    from qualitas.io.yuv import RawYUVSpec

    raw = tmp_path / "dist.yuv"
    with av.open(clips["dist"]) as c, open(raw, "wb") as out:
        for frame in c.decode(video=0):
            out.write(frame.to_ndarray(format="yuv420p").tobytes())  # planar Y, U, V
    (res,), _ = score_pairs(
        [Pair(str(raw), clips["ref"])], LUMA_METRICS, ScoreOptions(yuv=RawYUVSpec(W, H, "yuv420p", 25))
    )
    assert res.error is None and res.frames_scored == N, res.error
    want = _engine(clips["dist"], clips["ref"], LUMA_METRICS)
    for name in LUMA_METRICS:  # the same Y plane, whatever matrix the raw file is read with
        assert [f.scores[name] for f in res.frames] == pytest.approx(want[name], rel=1e-9), name

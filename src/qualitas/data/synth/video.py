"""Synthetic video content and distortions with PyAV: pristine clips, photo pans/zooms, ladders.

Pristine clips are stored losslessly (libx264 ``qp=0``, yuv420p) so that the teacher
(VMAF) measures only the distortion that was added. A distorted item is one
:class:`VideoStep`: optional frame-rate drop (each kept frame is held, so frame ``i`` of
the output still shows time ``i``), optional downscale, one encode with a codec at a CRF,
and, after a downscale, a lossless upscale back to the pristine size (bicubic).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from qualitas.errors import DependencyError, MediaError, UsageError
from qualitas.files import temp_for

LOSSLESS = {"codec": "libx264", "options": {"qp": "0", "preset": "veryfast"}}

# CRF ladders per codec (level 1 = best); the encoders' own CRF scales differ.
CRF_LADDERS: dict[str, tuple[int, ...]] = {
    "libx264": (23, 29, 35, 41, 47),
    "libx265": (24, 30, 36, 42, 48),
    "libvpx-vp9": (24, 36, 46, 54, 63),
    "libsvtav1": (24, 36, 46, 54, 63),
}
SCALE_LADDER = (0.75, 0.5, 0.375, 0.25, 0.125)
"""Resolution ladder (type ``downscale``): libx264 at CRF 23, then upscaled back."""
FPS_LADDER = (2, 3, 4, 6, 8)
"""Frame-rate drop ladder (type ``fps_drop``): keep every n-th frame, libx264 at CRF 23."""
LADDER_CRF = 23


@dataclass(frozen=True)
class VideoStep:
    """One distorted version of a pristine clip."""

    codec: str
    crf: int
    scale: float = 1.0
    fps_div: int = 1


def available_codecs() -> list[str]:
    """The ladder codecs this PyAV build can encode with."""
    out = []
    for name in CRF_LADDERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for an unknown codec
            continue
        out.append(name)
    return out


def video_types(codecs: list[str], *, resolution_ladder: bool = True, fps_drop: bool = False) -> list[str]:
    """Video distortion types: one CRF ladder per codec, plus ``downscale`` and ``fps_drop``."""
    unknown = [c for c in codecs if c not in CRF_LADDERS]
    if unknown:
        raise UsageError(f"unknown codec(s) {', '.join(unknown)}; choose from {', '.join(CRF_LADDERS)}")
    have = set(available_codecs())
    missing = [c for c in codecs if c not in have]
    if missing:
        raise DependencyError(f"this PyAV build cannot encode {', '.join(missing)}")
    return list(codecs) + (["downscale"] if resolution_ladder else []) + (["fps_drop"] if fps_drop else [])


def video_step(vtype: str, level: int) -> VideoStep:
    """The :class:`VideoStep` for a type at a level (1..5)."""
    i = level - 1
    if vtype in CRF_LADDERS:
        return VideoStep(vtype, CRF_LADDERS[vtype][i])
    if vtype == "downscale":
        return VideoStep("libx264", LADDER_CRF, scale=SCALE_LADDER[i])
    if vtype == "fps_drop":
        return VideoStep("libx264", LADDER_CRF, fps_div=FPS_LADDER[i])
    raise UsageError(f"unknown video distortion type {vtype!r}")


def _encoder_options(codec: str, crf: int) -> dict[str, str]:
    if codec == "libx264":
        return {"crf": str(crf), "preset": "veryfast"}
    if codec == "libx265":
        return {"crf": str(crf), "preset": "ultrafast", "x265-params": "log-level=error"}
    if codec == "libvpx-vp9":
        # Constant-quality mode needs a zero target bit rate.
        return {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
    if codec == "libsvtav1":
        # SVT-AV1 prints its configuration banner on stderr unless told otherwise.
        os.environ.setdefault("SVT_LOG", "1")
        return {"crf": str(crf), "preset": "11"}
    raise UsageError(f"unknown codec {codec!r}")


def _even(n: int) -> int:
    return max(2, n - (n % 2))


class _Writer:
    """Encode yuv420p ``av.VideoFrame``s (or RGB arrays) into a file, written atomically."""

    def __init__(
        self, path: Path, codec: str, options: dict[str, str], size: tuple[int, int], rate: Fraction
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_for(self.path, suffix=self.path.suffix)  # umask-respecting, not 0600
        self.tmp = tmp
        self.container = av.open(tmp, mode="w")
        self.stream = self.container.add_stream(codec, rate=rate, options=dict(options))
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        if codec == "libvpx-vp9":
            self.stream.bit_rate = 0
        self.stream.codec_context.time_base = Fraction(1, 1) / rate
        self.size = size
        self.rate = rate
        self.count = 0

    def write(self, frame: av.VideoFrame | np.ndarray) -> None:
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        if (frame.width, frame.height) != self.size or frame.format.name != "yuv420p":
            frame = frame.reformat(
                width=self.size[0], height=self.size[1], format="yuv420p", interpolation="BICUBIC"
            )
        frame.pts = self.count
        frame.time_base = self.stream.codec_context.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
        if self.count == 0:
            os.unlink(self.tmp)
            raise MediaError(f"{self.path}: no frames to encode")
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - closing a half-written file may fail; it is deleted anyway
            pass
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _frames(path: Path, max_frames: int | None = None) -> Iterator[av.VideoFrame]:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for n, frame in enumerate(container.decode(stream)):
                if max_frames is not None and n >= max_frames:
                    return
                yield frame
    except (av.error.FFmpegError, IndexError) as err:
        raise MediaError(f"{path}: cannot decode video ({err})") from None


def video_rate(path: Path) -> Fraction:
    """Average frame rate of the first video stream (25 when the container does not say)."""
    try:
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    except (av.error.FFmpegError, IndexError) as err:
        raise MediaError(f"{path}: cannot open video ({err})") from None
    return Fraction(rate).limit_denominator(1001) if rate else Fraction(25)


def make_pristine_clip(src: Path, out: Path, *, seconds: float | None, max_side: int = 0) -> int:
    """Losslessly re-encode the first ``seconds`` of ``src`` (even size, <= ``max_side``). Returns frames."""
    rate = video_rate(src)
    limit = None if not seconds else max(1, int(math.floor(seconds * rate)))
    frames = _frames(src, limit)
    first = next(frames, None)
    if first is None:
        raise MediaError(f"{src}: no video frames")
    w, h = first.width, first.height
    if max_side and max(w, h) > max_side:
        f = max_side / max(w, h)
        w, h = round(w * f), round(h * f)
    size = (_even(w), _even(h))
    with _Writer(out, LOSSLESS["codec"], LOSSLESS["options"], size, rate) as wr:
        wr.write(first)
        for frame in frames:
            wr.write(frame)
        n = wr.count
    return n


def distort_video(pristine: Path, out: Path, step: VideoStep) -> int:
    """Write ``pristine`` distorted by ``step`` to ``out`` at the pristine size. Returns frames."""
    rate = video_rate(pristine)
    first = next(_frames(pristine, 1), None)
    if first is None:
        raise MediaError(f"{pristine}: no video frames")
    full = (first.width, first.height)
    small = (_even(round(full[0] * step.scale)), _even(round(full[1] * step.scale)))
    opts = _encoder_options(step.codec, step.crf)
    target = out if step.scale == 1.0 else out.with_name(f".{out.stem}.lowres.mkv")
    try:
        with _Writer(target, step.codec, opts, small, rate) as wr:
            held = None
            for i, frame in enumerate(_frames(pristine)):
                # Frame-rate drop: keep every fps_div-th frame and hold it, so frame i of the
                # output still lines up with frame i of the pristine clip.
                if i % step.fps_div == 0:
                    held = frame
                wr.write(held)
            n = wr.count
        if step.scale != 1.0:
            with _Writer(out, LOSSLESS["codec"], LOSSLESS["options"], full, rate) as up:
                for frame in _frames(target):
                    up.write(
                        frame.reformat(
                            width=full[0], height=full[1], format="yuv420p", interpolation="BICUBIC"
                        )
                    )
    finally:
        if target != out and target.exists():
            target.unlink()
    return n


_MOTIONS = ("pan_right", "pan_left", "pan_down", "zoom_in", "zoom_out")


def photo_video(
    image: np.ndarray,
    out: Path,
    *,
    seconds: float,
    fps: int = 25,
    max_side: int = 640,
    rng: np.random.Generator,
) -> tuple[int, str]:
    """A camera move (pan or zoom, chosen by ``rng``) over a still photo ``(H,W,3) uint8``.

    The window covers 60-75% of the photo, eased in and out; frames are resampled with
    bicubic interpolation at sub-pixel positions and encoded losslessly.
    Returns (frames, motion).
    """
    h, w = image.shape[:2]
    motion = _MOTIONS[int(rng.integers(len(_MOTIONS)))]
    frac = float(rng.uniform(0.6, 0.75))
    bw, bh = w * frac, h * frac
    if motion.startswith("pan"):
        # Travel along the longer free axis unless the motion names the other one.
        cy, cx = (h - bh) / 2, (w - bw) / 2
        if motion == "pan_right":
            start, end = (0.0, cy, bw, bh), (w - bw, cy, bw, bh)
        elif motion == "pan_left":
            start, end = (w - bw, cy, bw, bh), (0.0, cy, bw, bh)
        else:
            start, end = (cx, 0.0, bw, bh), (cx, h - bh, bw, bh)
    else:
        wide = (0.0, 0.0, float(w), float(h))
        tight = ((w - bw) / 2, (h - bh) / 2, bw, bh)
        start, end = (wide, tight) if motion == "zoom_in" else (tight, wide)
    scale = min(1.0, max_side / max(bw, bh)) if max_side else 1.0
    size = (_even(round(bw * scale)), _even(round(bh * scale)))
    n = max(2, int(round(seconds * fps)))
    im = Image.fromarray(image, "RGB")
    with _Writer(out, LOSSLESS["codec"], LOSSLESS["options"], size, Fraction(fps)) as wr:
        for i in range(n):
            t = i / (n - 1)
            t = t * t * (3 - 2 * t)  # smoothstep: the camera eases in and out
            x, y, bw_i, bh_i = (a + (b - a) * t for a, b in zip(start, end))
            frame = im.resize(size, Image.Resampling.BICUBIC, box=(x, y, x + bw_i, y + bh_i))
            wr.write(np.asarray(frame, dtype=np.uint8))
    return n, motion


def count_frames(path: Path) -> int:
    return sum(1 for _ in _frames(path))

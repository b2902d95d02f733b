"""Streamed video reading through PyAV (FFmpeg), and raw ``.yuv`` through ``qualitas.io.yuv``.

Why this file is long: one streaming reader with its seek, selection, batching and raw-YUV
paths, which share the selection rules and the converter; split, each would re-state them.

Frames are decoded one at a time and converted to float32 RGB ``(3, H, W)`` in ``[0, 1]``;
the video is never held in memory. Rules (details in docs/media-io.md):

- ``index`` is the frame's position in the stream (0 = first decoded frame); ``time`` is
  its presentation time in seconds relative to the stream start (``pts - start_time``).
- ``start``/``end`` select ``start <= time < end``; ``frame_step`` then keeps every N-th
  of those frames (the first one included); ``max_frames`` stops after N frames.
- Rotation metadata (display matrix) is applied; ``VideoInfo.width/height`` are the
  displayed size.
- A stream that fails mid-way (truncated or corrupt file) yields the frames decoded
  before the failure, then raises ``MediaError``. For MP4/MOV, whose index declares
  the exact frame count, ending early without a decoder error is reported the same way.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from qualitas.errors import MediaError, UsageError, one_line
from qualitas.io import yuv as _yuv
from qualitas.io._convert import FrameConverter, has_luma_plane, pix_fmt_bits, yuv_luma, yuv_to_rgb
from qualitas.io.media import VIDEO_EXTENSIONS, check_readable, is_raw_yuv

if TYPE_CHECKING:  # annotations only: torch is imported in the functions that use it
    import torch

__all__ = [
    "DecodedBatch",
    "FrameBatch",
    "VideoFrame",
    "VideoInfo",
    "YuvFrame",
    "YuvPlanes",
    "has_luma_plane",
    "iter_batches",
    "iter_decoded_batches",
    "iter_frames",
    "iter_yuv_frames",
    "iter_lazy_frames",
    "probe_video",
]

# Times are compared with this slack so that 1.0 selects a frame stamped 0.99999999.
_TIME_EPS = 1e-6
# Container formats whose index gives an exact frame count (ffmpeg's mov demuxer).
_EXACT_COUNT_FORMATS = ("mov", "mp4")


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` reports. ``width``/``height`` are the displayed size (rotation
    applied); ``rotation`` is the clockwise rotation in degrees (0/90/180/270) applied to
    the stored frames; ``num_frames`` is ``None`` when neither the container nor the
    duration gives it; ``matrix`` the YUV->RGB matrix used (``"bt709"``, ``"bt601"``, ...;
    ``"rgb"`` for RGB sources)."""

    width: int
    height: int
    fps: float
    num_frames: int | None
    duration: float | None
    pix_fmt: str
    bit_depth: int
    rotation: int
    codec: str
    fps_fraction: Fraction = Fraction(0)
    matrix: str = "bt709"
    full_range: bool = False
    path: str = ""


@dataclass
class VideoFrame:
    """One decoded frame: stream ``index``, ``time`` in seconds, ``data`` float32 ``(3, H, W)``."""

    index: int
    time: float
    data: torch.Tensor


@dataclass
class FrameBatch:
    """Consecutive selected frames: ``indices``/``times`` (length B), ``data`` ``(B, 3, H, W)``
    RGB, and with ``luma=True`` readers ``luma`` ``(B, 1, H, W)``: the normalised Y' of the
    frames' Y plane (``_convert.yuv_luma``). ``data`` is None when RGB was not asked for."""

    indices: list[int]
    times: list[float]
    data: torch.Tensor | None
    luma: torch.Tensor | None = None


@dataclass(frozen=True)
class YuvPlanes:
    """The decoded planes of one planar-YUV frame, as the decoder holds them (no conversion).

    ``y`` ``(H, >= W)``, ``u``/``v`` ``(ceil(H/dy), >= ceil(W/dx))`` integer arrays (uint8, or
    uint16 above 8 bits) whose rows may carry padding past the image: ``width`` is the
    picture's. ``dy``/``dx`` the chroma subsampling (1 or 2), ``matrix``/``full_range``/
    ``bit_depth`` what :class:`~qualitas.io._convert.FrameConverter` would convert them with.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    width: int
    height: int
    dy: int
    dx: int
    bit_depth: int
    full_range: bool
    matrix: str


@dataclass
class YuvFrame:
    """A selected frame's ``index``, ``time`` and :class:`YuvPlanes` (see :func:`iter_yuv_frames`)."""

    index: int
    time: float
    planes: YuvPlanes


# --- probing -----------------------------------------------------------------------


def probe_video(path: str | os.PathLike, yuv: _yuv.RawYUVSpec | None = None) -> VideoInfo:
    """Describe a video file (decodes its first frame to read rotation and colour tags)."""
    p = _check_video_path(path, yuv)
    if is_raw_yuv(p):
        return _probe_raw(p, yuv)
    with _open(p) as container:
        stream = _video_stream(container, p)
        first = _first_frame(container, stream, p)
        return _info(p, container, stream, first)


def count_frames(path: str | os.PathLike, yuv: _yuv.RawYUVSpec | None = None) -> int:
    """Frames in a video without decoding them: raw YUV from its size, else by demuxing
    (counting the video stream's packets), which costs a read of the file, not a decode."""
    p = _check_video_path(path, yuv)
    if is_raw_yuv(p):
        return _yuv.count_frames(p, yuv)
    with _open(p) as container:
        stream = _video_stream(container, p)
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError as err:
            raise MediaError(f"cannot read video packets ({_av_reason(err)})") from None


def _check_video_path(path: str | os.PathLike, yuv: _yuv.RawYUVSpec | None) -> Path:
    p = check_readable(path)
    ext = p.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise MediaError(f"{path}: unsupported video extension {ext or '(none)'}")
    if is_raw_yuv(p) and yuv is None:
        raise MediaError(f"{path}: raw .yuv has no header; pass --size WxH --pix-fmt yuv420p --fps N")
    return p


def _probe_raw(path: Path, spec: _yuv.RawYUVSpec) -> VideoInfo:
    n = _yuv.count_frames(path, spec)
    fps = spec.fps_fraction
    return VideoInfo(
        width=spec.width,
        height=spec.height,
        fps=float(fps),
        num_frames=n,
        duration=float(n / fps),
        pix_fmt=spec.pix_fmt,
        bit_depth=spec.bit_depth,
        rotation=0,
        codec="rawvideo",
        fps_fraction=fps,
        matrix=spec.matrix_name,
        full_range=spec.full_range,
        path=str(path),
    )


def _open(path: Path):
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as err:
        raise MediaError(f"{path}: cannot open video ({_av_reason(err)})") from None


def _av_reason(err: BaseException) -> str:
    # PyAV messages end with ": '<filename>'", which the caller already prints.
    msg = one_line(err)
    msg = re.sub(r"^\[Errno -?\d+\]\s*", "", msg)  # FFmpeg's error number says nothing to a user
    return msg.split(": '", 1)[0] if ": '" in msg else msg


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise MediaError(f"{path}: no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # a codec id FFmpeg has no decoder for (a corrupt header)
        raise MediaError(f"{path}: no decoder for its video stream (unknown or corrupt codec)")
    stream.thread_type = "AUTO"  # frame + slice threads; FFmpeg picks the count
    return stream


def _first_frame(container, stream, path: Path):
    errors: list[str] = []
    for frame in _decode_tolerant(container, stream, errors):
        return frame
    if errors:
        raise MediaError(f"{path}: cannot decode video ({errors[0]})")
    raise MediaError(f"{path}: video stream has no decodable frames")


def _stream_fps(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def _rotation_cw(stream, frame) -> int:
    """Clockwise display rotation (0/90/180/270): the display matrix (``frame.rotation``
    is anticlockwise), else the legacy ``rotate`` tag (clockwise)."""
    ccw = frame.rotation if frame is not None else 0
    if ccw:
        return int(round(-ccw / 90.0)) * 90 % 360
    tag = stream.metadata.get("rotate")
    try:
        return int(round(float(tag) / 90.0)) * 90 % 360 if tag else 0
    except ValueError:
        return 0


def _info(path: Path, container, stream, first) -> VideoInfo:
    fps = _stream_fps(stream)
    if fps is None:
        raise MediaError(f"{path}: unknown frame rate")
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    num_frames = int(stream.frames) if stream.frames else None
    if num_frames is None and duration:
        num_frames = int(round(duration * fps))  # estimate for containers without a count
    rotation = _rotation_cw(stream, first)
    w, h = first.width, first.height
    if rotation in (90, 270):
        w, h = h, w
    pix_fmt = first.format.name
    settings = FrameConverter().settings(first)
    return VideoInfo(
        width=w,
        height=h,
        fps=float(fps),
        num_frames=num_frames,
        duration=duration,
        pix_fmt=pix_fmt,
        bit_depth=pix_fmt_bits(pix_fmt),
        rotation=rotation,
        codec=stream.codec_context.name,
        fps_fraction=fps,
        matrix=settings[0],
        full_range=settings[1],
        path=str(path),
    )


# --- frame selection -----------------------------------------------------------------


class _Selection:
    """Decides per frame time: skip, take, or stop (``start <= t < end``, step, max)."""

    def __init__(self, frame_step: int, max_frames: int | None, start: float | None, end: float | None):
        if not isinstance(frame_step, int) or frame_step < 1:
            raise UsageError(f"frame_step must be an integer >= 1, got {frame_step!r}")
        if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 0):
            raise UsageError(f"max_frames must be an integer >= 0, got {max_frames!r}")
        if start is not None and (not math.isfinite(start) or start < 0):
            raise UsageError(f"start must be a time >= 0 in seconds, got {start!r}")
        if end is not None and (not math.isfinite(end) or end <= (start or 0.0)):
            raise UsageError(f"end must be after start, got start={start!r} end={end!r}")
        self.step, self.max_frames, self.start, self.end = frame_step, max_frames, start, end
        self.considered = 0
        self.taken = 0

    def done(self) -> bool:
        return self.max_frames is not None and self.taken >= self.max_frames

    def decide(self, time: float) -> str:
        if self.done() or (self.end is not None and time >= self.end - _TIME_EPS):
            return "stop"
        if self.start is not None and time < self.start - _TIME_EPS:
            return "skip"
        k = self.considered
        self.considered += 1
        if k % self.step:
            return "skip"
        self.taken += 1
        return "take"


# --- iteration -----------------------------------------------------------------------

# A selected frame whose pixels are converted only when asked (into ``out`` if given),
# so batch readers write straight into the batch tensor: (index, time, RGB converter,
# (3, H, W), luma converter writing (1, H, W)).
_Convert = Callable[["torch.Tensor | None"], "torch.Tensor"]
_Lazy = tuple[int, float, _Convert, tuple[int, int, int], _Convert, "Callable[[], YuvPlanes | None]"]


def iter_frames(
    path: str | os.PathLike,
    *,
    frame_step: int = 1,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    yuv: _yuv.RawYUVSpec | None = None,
) -> Iterator[VideoFrame]:
    """Yield the selected frames of a video, one at a time.

    ``data`` is float32 ``(3, H, W)`` RGB in ``[0, 1]`` (rotation applied). ``yuv`` is
    required for raw ``.yuv`` files. Raises ``MediaError`` for unreadable files; a stream
    failing mid-way raises after the frames decoded before the failure.
    """
    lazy = iter_lazy_frames(path, frame_step=frame_step, max_frames=max_frames, start=start, end=end, yuv=yuv)
    for index, time, convert in lazy:
        yield VideoFrame(index=index, time=time, data=convert(None))


def iter_lazy_frames(
    path: str | os.PathLike,
    *,
    frame_step: int = 1,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    yuv: _yuv.RawYUVSpec | None = None,
) -> Iterator[tuple[int, float, _Convert]]:
    """Yield ``(index, time, convert)`` per selected frame, decoded but not yet converted.

    ``convert(None)`` returns what ``iter_frames`` yields as ``data`` (float32 ``(3, H, W)``
    RGB in ``[0, 1]``). A caller that keeps a few frames of a long stream (clip sampling)
    converts only those: the colour conversion costs more than decoding at 1080p. Call it
    before advancing the iterator (the decoder may reuse the frame's planes).
    """
    for index, time, convert, _, _, _ in _iter_lazy_planes(path, frame_step, max_frames, start, end, yuv):
        yield index, time, convert


def iter_yuv_frames(
    path: str | os.PathLike,
    *,
    frame_step: int = 1,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    yuv: _yuv.RawYUVSpec | None = None,
) -> Iterator[YuvFrame]:
    """Yield the selected frames of a planar-YUV video as their decoded planes (no RGB, no
    float conversion): for metrics computed straight from the Y, U and V samples.

    Same selection, errors and frame numbering as :func:`iter_frames`. Frames that are not
    planar YUV, or a rotated stream, raise ``MediaError`` (check ``has_luma_plane`` and
    ``VideoInfo.rotation`` first). The planes of one frame stay valid after the iterator
    moves on (decoded frames are reference-counted; raw ``.yuv`` frames are copied).
    """
    for index, time, _, _, _, planes in _iter_lazy_planes(path, frame_step, max_frames, start, end, yuv):
        got = planes()
        if got is None:
            raise MediaError(f"{path}: frame {index} is not planar YUV (or the video is rotated)")
        yield YuvFrame(index=index, time=time, planes=got)


def iter_batches(
    path: str | os.PathLike,
    batch_size: int,
    *,
    frame_step: int = 1,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    yuv: _yuv.RawYUVSpec | None = None,
    reuse_buffer: bool | int = False,
    rgb: bool = True,
    luma: bool = False,
) -> Iterator[FrameBatch]:
    """Like ``iter_frames`` but groups up to ``batch_size`` frames: ``data`` ``(B, 3, H, W)``.

    Frames are converted straight into the batch tensor (no stacking copy). The last
    batch may be shorter. ``reuse_buffer=True`` fills the same tensor for every batch
    (valid only until the next batch is requested): it saves the operating system's cost
    of handing out fresh memory for each batch (page faults, about 5 ms per 1080p frame
    on the development machine) for callers that consume each batch before the next.
    An integer ``n`` rotates ``n`` tensors: a batch stays valid until ``n`` more batches
    have been requested (``2`` for a consumer one batch behind a prefetching thread).

    ``luma=True`` also fills ``FrameBatch.luma`` ``(B, 1, H, W)`` from the frames' Y plane
    (planar YUV only: other formats raise ``MediaError``; see ``has_luma_plane``), and
    ``rgb=False`` skips the RGB conversion (``data`` is None): luma-only metrics then
    cost the decoder and one pass over the Y plane.
    """
    import torch

    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    pool_size = int(reuse_buffer)
    if pool_size < 0:
        raise UsageError(f"reuse_buffer must be >= 0, got {reuse_buffer!r}")
    if not (rgb or luma):
        raise UsageError("iter_batches needs rgb=True or luma=True")
    # Buffers are (rgb, luma) pairs, recycled together.
    pool: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []  # handed out, oldest first
    buf: tuple[torch.Tensor | None, torch.Tensor | None] | None = None
    spare: tuple[torch.Tensor | None, torch.Tensor | None] | None = None
    shape: tuple[int, int, int] | None = None
    indices: list[int] = []
    times: list[float] = []
    for index, time, convert, frame_shape, convert_luma, _ in _iter_lazy_planes(
        path, frame_step, max_frames, start, end, yuv
    ):
        if shape is None:
            shape = frame_shape
        elif frame_shape != shape:
            raise MediaError(
                f"{path}: frame size changed mid-stream at frame {index} "
                f"({shape[2]}x{shape[1]} -> {frame_shape[2]}x{frame_shape[1]})"
            )
        if buf is None:
            if spare is not None:
                buf = spare
            else:
                buf = (
                    torch.empty((batch_size, *shape), dtype=torch.float32) if rgb else None,
                    torch.empty((batch_size, 1, *shape[1:]), dtype=torch.float32) if luma else None,
                )
        j = len(indices)
        if buf[0] is not None:
            convert(buf[0][j])
        if buf[1] is not None:
            convert_luma(buf[1][j])
        indices.append(index)
        times.append(time)
        if len(indices) == batch_size:
            yield FrameBatch(indices=indices, times=times, data=buf[0], luma=buf[1])
            spare = None
            if pool_size:
                pool.append(buf)
                if len(pool) >= pool_size:
                    spare = pool.pop(0)  # handed out pool_size batches ago: free again
            buf, indices, times = None, [], []
    if indices and buf is not None:
        n = len(indices)
        yield FrameBatch(
            indices=indices,
            times=times,
            data=None if buf[0] is None else buf[0][:n],
            luma=None if buf[1] is None else buf[1][:n],
        )


@dataclass
class DecodedBatch:
    """Up to ``batch_size`` decoded but not yet converted frames (see :func:`iter_decoded_batches`)."""

    indices: list[int]
    times: list[float]
    shape: tuple[int, int, int]
    """(3, H, W) of each converted frame."""
    converts: list[_Convert]
    luma_converts: list[_Convert] = field(default_factory=list)

    def to_batch(
        self,
        out: torch.Tensor | None = None,
        *,
        rgb: bool = True,
        luma: bool = False,
        luma_out: torch.Tensor | None = None,
    ) -> FrameBatch:
        """Convert into ``out`` (B' >= len, 3, H, W) and, with ``luma``, ``luma_out``
        (B' >= len, 1, H, W), each reused when it fits -> :class:`FrameBatch`."""
        import torch

        n = len(self.indices)
        data = lum = None
        if rgb:
            if out is None or tuple(out.shape[1:]) != self.shape or out.shape[0] < n:
                out = torch.empty((n, *self.shape), dtype=torch.float32)
            for j, convert in enumerate(self.converts):
                convert(out[j])
            data = out[:n]
        if luma:
            lshape = (1, *self.shape[1:])
            if luma_out is None or tuple(luma_out.shape[1:]) != lshape or luma_out.shape[0] < n:
                luma_out = torch.empty((n, *lshape), dtype=torch.float32)
            for j, convert in enumerate(self.luma_converts):
                convert(luma_out[j])
            lum = luma_out[:n]
        return FrameBatch(indices=self.indices, times=self.times, data=data, luma=lum)


def iter_decoded_batches(
    path: str | os.PathLike,
    batch_size: int,
    *,
    frame_step: int = 1,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    yuv: _yuv.RawYUVSpec | None = None,
) -> Iterator[DecodedBatch]:
    """Like :func:`iter_batches`, but the frames are only decoded: ``DecodedBatch.to_batch``
    converts them to float RGB later, e.g. in another thread than the decoding (a decoded
    4K YUV 4:2:0 frame holds 12 MB, its float RGB 100 MB)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    group: DecodedBatch | None = None
    for index, time, convert, shape, convert_luma, _ in _iter_lazy_planes(
        path, frame_step, max_frames, start, end, yuv
    ):
        if group is None:
            group = DecodedBatch([], [], shape, [])
        elif group.shape != shape:
            raise MediaError(
                f"{path}: frame size changed mid-stream at frame {index} "
                f"({group.shape[2]}x{group.shape[1]} -> {shape[2]}x{shape[1]})"
            )
        group.indices.append(index)
        group.times.append(time)
        group.converts.append(convert)
        group.luma_converts.append(convert_luma)
        if len(group.indices) == batch_size:
            yield group
            group = DecodedBatch([], [], shape, [])
    if group is not None and group.indices:
        yield group


def _iter_lazy_planes(path, frame_step, max_frames, start, end, yuv) -> Iterator[_Lazy]:
    selection = _Selection(frame_step, max_frames, start, end)
    p = _check_video_path(path, yuv)
    if is_raw_yuv(p):
        yield from _iter_raw(p, yuv, selection)
    else:
        yield from _iter_av(p, selection)


def _iter_raw(path: Path, spec: _yuv.RawYUVSpec, selection: _Selection) -> Iterator[_Lazy]:
    n = _yuv.count_frames(path, spec)
    fps = spec.fps_fraction

    def wanted() -> Iterator[int]:
        # Frame i is shown at i / fps: jump straight to the first frame at or after start.
        first = 0 if selection.start is None else max(0, math.ceil((selection.start - _TIME_EPS) * fps))
        for i in range(first, n):
            decision = selection.decide(float(i / fps))
            if decision == "stop":
                return
            if decision == "take":
                yield i

    def bind(planes) -> _Convert:
        return lambda out: yuv_to_rgb(*planes, **options, out=out)

    def bind_luma(planes) -> _Convert:
        def convert(out: torch.Tensor | None) -> torch.Tensor:
            import torch

            if out is None:
                out = torch.empty((1, spec.height, spec.width), dtype=torch.float32)
            yuv_luma(planes[0], bit_depth=spec.bit_depth, full_range=spec.full_range, out=out[0])
            return out

        return convert

    options = dict(bit_depth=spec.bit_depth, matrix=spec.matrix_name, full_range=spec.full_range, scratch={})
    shape = (3, spec.height, spec.width)
    dx, dy, _ = _yuv.RAW_PIX_FMTS[spec.pix_fmt]

    def bind_planes(planes) -> Callable[[], YuvPlanes]:
        # The reader reuses its buffer for the next frame: the planes are copied (cheap next
        # to any metric) so that they outlive it in a prefetching thread.
        return lambda: YuvPlanes(
            *(np.array(pl) for pl in planes),
            width=spec.width,
            height=spec.height,
            dy=dy,
            dx=dx,
            bit_depth=spec.bit_depth,
            full_range=spec.full_range,
            matrix=spec.matrix_name,
        )

    for index, planes in _yuv.read_raw_frames(path, spec, wanted()):
        yield index, float(index / fps), bind(planes), shape, bind_luma(planes), bind_planes(planes)


def _bind(converter: FrameConverter, frame) -> _Convert:
    return lambda out: converter(frame, out)


def _bind_luma(converter: FrameConverter, frame) -> _Convert:
    return lambda out: converter.luma(frame, out)


def _bind_planes(converter: FrameConverter, frame) -> Callable[[], YuvPlanes | None]:
    def planes() -> YuvPlanes | None:
        name = frame.format.name
        if converter.rotation or not has_luma_plane(name):
            return None
        matrix, full, bits = converter.settings(frame)
        dtype = np.dtype("<u2") if bits > 8 else np.dtype(np.uint8)
        arrays = []
        for i in range(3):
            pl = frame.planes[i]
            arrays.append(np.frombuffer(pl, dtype=dtype).reshape(pl.height, pl.line_size // dtype.itemsize))
        h, w = frame.height, frame.width
        ch, cw = frame.planes[1].height, frame.planes[1].width
        return YuvPlanes(
            *arrays,
            width=w,
            height=h,
            dy=-(-h // ch),
            dx=-(-w // cw),
            bit_depth=bits,
            full_range=full,
            matrix=matrix,
        )

    return planes


def _iter_av(path: Path, selection: _Selection) -> Iterator[_Lazy]:
    seek = None
    if selection.start is not None:
        # The time of the stream's first frame numbers the frames after a seek.
        with _open(path) as container:
            stream = _video_stream(container, path)
            first = _first_frame(container, stream, path)
            t0 = stream.start_time or 0
            if first.pts is not None and stream.time_base:
                first_time = float((first.pts - t0) * stream.time_base)
                if selection.start > first_time + _TIME_EPS:
                    seek = (t0 + int(selection.start / stream.time_base), first_time)
    if seek is not None:
        seeked = yield from _decode(path, selection, seek=seek)
        if seeked:
            return
    yield from _decode(path, selection, seek=None)


def _decode(path: Path, selection: _Selection, seek: tuple[int, float] | None):
    """Decode and yield the selected frames; with ``seek=(pts, first_time)`` start at the
    key frame before ``pts``. Returns False (having yielded nothing) when seeking is not
    possible or lands past the start, so the caller decodes from the top instead."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream) or Fraction(25)  # only numbers frames after a seek
        time_base = stream.time_base or Fraction(1, 1_000_000)
        t0 = stream.start_time or 0
        if seek is not None:
            try:
                container.seek(seek[0], stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:
                return False
        converter: FrameConverter | None = None
        guess = _PtsGuesser()
        decoded = 0
        last_index = -1
        errors: list[str] = []
        for frame in _decode_tolerant(container, stream, errors):
            decoded += 1
            pts = guess(frame.pts, frame.dts)
            if pts is None:
                index = last_index + 1
                time = index / float(fps)
            else:
                time = float((pts - t0) * time_base)
                # After a seek the decode counter is unknown: number frames from their
                # time (exact for constant frame rate).
                index = round((time - seek[1]) * fps) if seek is not None else last_index + 1
            if (
                seek is not None
                and decoded == 1
                and (pts is None or time > selection.start + 0.5 / float(fps))
            ):
                return False  # landed past the start (or lost timestamps)
            last_index = index
            if converter is None:
                converter = FrameConverter(rotation=_rotation_cw(stream, frame))
            decision = selection.decide(time)
            if decision == "stop":
                return True
            if decision == "take":
                yield (
                    index,
                    time,
                    _bind(converter, frame),
                    converter.out_shape(frame),
                    _bind_luma(converter, frame),
                    _bind_planes(converter, frame),
                )
                if selection.done():
                    return True
        if errors:
            raise MediaError(
                f"{path}: decoding failed ({errors[0]}; {len(errors)} bad packet(s), {decoded} frames "
                "decoded); file truncated or corrupt"
            )
        if decoded == 0:
            raise MediaError(f"{path}: video stream has no decodable frames")
        declared = int(stream.frames or 0)
        if seek is None and declared and decoded < declared and _exact_count(container):
            raise MediaError(
                f"{path}: truncated: decoded {decoded} of {declared} frames declared by the container"
            )
        return True


def _decode_tolerant(container, stream, errors: list[str]) -> Iterator:
    """Decode packet by packet; a packet that fails (truncated or corrupt) is recorded in
    ``errors`` and skipped, so every frame the decoder can still produce (including those
    buffered by frame threading) comes out before the caller reports the failure."""
    codec = stream.codec_context
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)  # the last one is an empty packet that drains the decoder
        except StopIteration:
            return
        except av.FFmpegError as err:  # the demuxer hit broken data
            errors.append(_av_reason(err))
            break
        try:
            frames = codec.decode(packet)
        except av.FFmpegError as err:
            errors.append(_av_reason(err))
            continue
        yield from frames
    if errors:  # demuxing stopped early: drain what the decoder still holds
        try:
            yield from codec.decode(None)  # drain frames still inside the decoder
        except av.FFmpegError as err:
            errors.append(_av_reason(err))


class _PtsGuesser:
    """FFmpeg's ``guess_correct_pts`` (the ``best_effort_timestamp`` PyAV does not expose):
    use the reordered pts unless it has gone backwards more often than the dts, as in AVI
    files with packed B-frames, whose frames carry shuffled pts but increasing dts."""

    def __init__(self) -> None:
        self.faulty_pts = self.faulty_dts = 0
        self.last_pts: int | None = None
        self.last_dts: int | None = None

    def __call__(self, pts: int | None, dts: int | None) -> int | None:
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        elif pts is not None:
            self.last_dts = pts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        elif dts is not None:
            self.last_pts = dts
        if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None):
            return pts
        return dts


def _exact_count(container) -> bool:
    names = container.format.name.split(",")
    return any(n in _EXACT_COUNT_FORMATS for n in names)

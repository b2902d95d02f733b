"""``qualitas data frames``: extract video frames to image files, resumably, with a manifest.

Frames are streamed with :func:`qualitas.io.video.iter_frames` (never a whole video in
memory) and written as ``<out>/<video id>/<index:06d>.png`` (or ``.jpg``, quality 95,
no chroma subsampling), each atomically (temp file + rename) so a file that exists is
complete. A finished video gets a ``.done.json`` marker holding its frame list and the
options used; a rerun with the same options skips it without decoding, and a video cut
short (interrupted run) is decoded again but only its missing frames are written.
The frames manifest (``frames.jsonl`` by default) has one record per frame: ``path``
(relative to ``out``), ``group`` (the video id), ``video``, ``index``, ``time``.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qualitas.data.manifest import Record, write_manifest
from qualitas.errors import MediaError, QualitasError, UsageError, one_line
from qualitas.files import atomic_write_text

FORMATS = ("png", "jpg")
DONE = ".done.json"


@dataclass(frozen=True)
class FrameOptions:
    """Which frames to keep and how to store them."""

    step: int | None = None
    """Keep every N-th frame (default 1)."""
    fps: float | None = None
    """Keep about ``fps`` frames per second, by presentation time (exclusive with ``step``)."""
    max_frames: int | None = None
    fmt: str = "png"
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.step is not None and self.fps is not None:
            raise UsageError("--step and --fps are exclusive")
        if self.step is not None and self.step < 1:
            raise UsageError(f"--step must be >= 1, got {self.step}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise UsageError(f"--fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")


@dataclass
class FramesResult:
    records: list[Record] = field(default_factory=list)
    written: int = 0
    """Frame files written in this run."""
    skipped_videos: int = 0
    """Videos already complete (marker found) and not decoded."""
    failures: list[str] = field(default_factory=list)


def to_uint8_hwc(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded."""
    return (frame.clamp(0, 1).mul(255).round().to(torch.uint8)).permute(1, 2, 0).contiguous().numpy()


def save_frame(frame: torch.Tensor, path: Path, fmt: str = "png", jpeg_quality: int = 95) -> None:
    """Write one frame atomically (a reader never sees a half-written file)."""
    img = Image.fromarray(to_uint8_hwc(frame), "RGB")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if fmt == "png":
        img.save(tmp, format="PNG", compress_level=3)
    else:
        img.save(tmp, format="JPEG", quality=jpeg_quality, subsampling=0)
    os.replace(tmp, path)


class FpsSampler:
    """Time-based sampling: keep the first frame at or after each multiple of ``1/fps`` s."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.next_t = 0.0

    def keep(self, t: float) -> bool:
        if t + 1e-6 < self.next_t:
            return False
        self.next_t = (math.floor(t * self.fps + 1e-6) + 1) / self.fps
        return True


def video_id(video: Path, base: Path | None) -> str:
    """Folder name for a video's frames: its path under ``base`` without extension."""
    rel = video.relative_to(base).with_suffix("").as_posix() if base else video.stem
    return re.sub(r"[^A-Za-z0-9_./-]", "_", rel)


def extract_video(
    video: Path, out: Path, vid: str, opts: FrameOptions, *, progress: bool = True
) -> tuple[list[Record], int, bool]:
    """Extract one video's frames under ``out/vid``. Returns (records, files written, skipped)."""
    from tqdm import tqdm

    from qualitas.io.video import iter_frames, probe_video

    folder = out / vid
    marker = folder / DONE
    want = {"step": opts.step, "fps": opts.fps, "max_frames": opts.max_frames, "fmt": opts.fmt,
            "size": video.stat().st_size, "mtime_ns": video.stat().st_mtime_ns}  # fmt: skip
    try:
        done = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        done = None
    if done and done.get("options") == want and all((out / f["path"]).is_file() for f in done["frames"]):
        return [_record(f, vid, video) for f in done["frames"]], 0, True

    info = probe_video(video)
    folder.mkdir(parents=True, exist_ok=True)
    step = opts.step or 1
    total = info.num_frames
    if total is not None:
        total = (
            math.ceil(total / step) if opts.fps is None else int(total / max(info.fps, 1e-9) * opts.fps) + 1
        )
        if opts.max_frames:
            total = min(total, opts.max_frames)
    frames, written = [], 0
    sampler = FpsSampler(opts.fps) if opts.fps is not None else None
    bar = tqdm(total=total, desc=vid, unit="frame", disable=not progress, leave=False)
    try:
        for fr in iter_frames(video, frame_step=step if opts.fps is None else 1):
            if sampler is not None and not sampler.keep(fr.time):
                continue
            name = f"{fr.index:06d}.{opts.fmt}"
            path = folder / name
            if not path.is_file():  # resume: files are written atomically, so existing = complete
                save_frame(fr.data, path, opts.fmt, opts.jpeg_quality)
                written += 1
            frames.append({"path": f"{vid}/{name}", "index": fr.index, "time": round(fr.time, 6)})
            bar.update(1)
            if opts.max_frames and len(frames) >= opts.max_frames:
                break
    finally:
        bar.close()
    atomic_write_text(marker, json.dumps({"options": want, "frames": frames}))
    return [_record(f, vid, video) for f in frames], written, False


def _record(f: dict, vid: str, video: Path) -> Record:
    return Record(
        path=f["path"], group=vid, extra={"video": str(video), "index": f["index"], "time": f["time"]}
    )


def list_videos(src: Path) -> tuple[list[Path], Path | None]:
    """The video files to extract: ``src`` itself, or every video under the folder ``src``."""
    from qualitas.io.media import VIDEO_EXTENSIONS

    if src.is_file():
        return [src], None
    if not src.is_dir():
        raise UsageError(f"not a video or folder: {src}")
    vids = sorted(
        p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS - {".yuv"}
    )
    if not vids:
        raise UsageError(f"no video files under {src}")
    return vids, src


def extract_frames(
    src: str | os.PathLike,
    out: str | os.PathLike,
    opts: FrameOptions,
    *,
    manifest: str | os.PathLike | None = None,
    progress: bool = True,
) -> FramesResult:
    """Extract frames of a video (or every video in a folder) and write the frames manifest."""
    from tqdm import tqdm

    out_path = Path(out)
    videos, base = list_videos(Path(src))
    result = FramesResult()
    for video in tqdm(videos, desc="videos", unit="video", disable=not progress or len(videos) < 2):
        try:
            recs, written, skipped = extract_video(
                video, out_path, video_id(video, base), opts, progress=progress
            )
        except (MediaError, OSError) as err:
            result.failures.append(f"{video}: {one_line(err)}")
            continue
        except QualitasError:
            raise
        result.records += recs
        result.written += written
        result.skipped_videos += int(skipped)
    write_manifest(result.records, Path(manifest) if manifest else out_path / "frames.jsonl")
    return result

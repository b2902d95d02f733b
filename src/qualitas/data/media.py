"""Loading the media of manifest rows for datasets: images, selected video frames, frame
folders, and which of the three a path is (``media_kind_of``; ``qualitas.io.media.media_kind``
is the stricter image/video decision for scoring, which refuses unknown extensions)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from qualitas.errors import MediaError
from qualitas.io.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS


def media_kind_of(path: Path) -> str:
    """``image`` | ``video`` | ``frames`` (a folder of frames) from the path alone."""
    if path.is_dir():
        return "frames"
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "image"


def list_frames(folder: Path) -> list[Path]:
    """Image files of a pre-extracted frame folder, in natural (name) order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def load_image(path: Path) -> torch.Tensor:
    """``(3,H,W)`` float in [0,1] via qualitas.io."""
    from qualitas.io.image import read_image

    return read_image(path).data


def load_video_frames(path: Path, indices: Sequence[int], fps: float | None = None) -> torch.Tensor:
    """Decode only the frames at ``indices`` (sorted, repeats allowed) -> ``(T,3,H,W)``.

    Seeks to the first wanted frame when ``fps`` is known (``qualitas.io`` starts at the key
    frame before it) and stops after the last one. When the container announced more
    frames than it holds, missing indices reuse the last decoded frame.
    """
    from qualitas.io.video import iter_frames

    wanted = sorted(set(indices))
    wanted_set = set(wanted)
    # Half a frame early: frame times are exact only for constant frame rates.
    start = (wanted[0] - 0.5) / fps if fps and wanted[0] > 0 else None
    got: dict[int, torch.Tensor] = {}
    last: torch.Tensor | None = None
    for frame in iter_frames(path, start=start):
        if frame.index in wanted_set:
            got[frame.index] = frame.data
        last = frame.data
        if frame.index >= wanted[-1]:
            break
    if last is None:
        raise MediaError(f"{path}: no frames decoded")
    out, prev = [], None
    for i in indices:
        prev = got.get(i, prev if prev is not None else last)
        out.append(prev)
    return torch.stack(out)


def probe_frames(path: Path) -> tuple[int, float]:
    """(frame count, fps) of a video; MediaError when the count is unknown."""
    from qualitas.io.video import probe_video

    info = probe_video(path)
    n = int(info.num_frames or 0)
    if n < 1:
        raise MediaError(f"{path}: frame count unknown")
    return n, float(info.fps or 0.0)


def video_num_frames(path: Path) -> int:
    return probe_frames(path)[0]

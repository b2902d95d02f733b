"""Media kinds by file extension.

The extension decides how a file is read (Pillow for images, PyAV for videos, numpy for
raw ``.yuv``); the content is validated by the reader, which raises ``MediaError`` when
a file does not hold what its name says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from qualitas.errors import MediaError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts",
        ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ivf", ".y4m", ".h264", ".264",
        ".h265", ".265", ".hevc", ".yuv",
    }
)  # fmt: skip
RAW_YUV_EXTENSIONS: frozenset[str] = frozenset({".yuv"})

MediaKind = Literal["image", "video"]


def media_kind(path: str | os.PathLike) -> MediaKind:
    """Return ``"image"`` or ``"video"`` from the extension; ``MediaError`` otherwise."""
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    shown = ext or "(none)"
    raise MediaError(
        f"{path}: unsupported file extension {shown}; images: {', '.join(sorted(IMAGE_EXTENSIONS))}; "
        f"videos: {', '.join(sorted(VIDEO_EXTENSIONS))}"
    )


def is_media(path: str | os.PathLike) -> bool:
    """True when the extension is a supported image or video extension."""
    ext = Path(path).suffix.lower()
    return ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS


def is_raw_yuv(path: str | os.PathLike) -> bool:
    """True for headerless raw YUV files (need an explicit ``RawYUVSpec``)."""
    return Path(path).suffix.lower() in RAW_YUV_EXTENSIONS


def check_readable(path: str | os.PathLike) -> Path:
    """Common checks before decoding: exists, is a file, not empty. Returns the ``Path``."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{path}: no such file")
    if not p.is_file():
        raise MediaError(f"{path}: not a regular file")
    if p.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    return p

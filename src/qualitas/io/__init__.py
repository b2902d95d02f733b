"""Reading media: still images, streamed video, raw YUV, and full-reference pairing.

Everything returns float32 RGB tensors in ``[0, 1]``: ``(3, H, W)`` per image or frame,
``(B, 3, H, W)`` per batch. See docs/media-io.md for the rules (bit depth, alpha, EXIF
orientation, YUV matrices, rotation, frame selection, truncated files).
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the submodule defining it. Submodules are imported on first use (PEP 562),
# so that importing one of them (e.g. ``qualitas.io.video`` for the YUV fast path) does not
# import the others' dependencies (torch, PIL).
_EXPORTS = {
    "ImageData": "image",
    "read_image": "image",
    "IMAGE_EXTENSIONS": "media",
    "VIDEO_EXTENSIONS": "media",
    "is_media": "media",
    "media_kind": "media",
    "Pair": "pairing",
    "check_fps": "pairing",
    "collect_pairs": "pairing",
    "match_size": "pairing",
    "size_note": "pairing",
    "FrameBatch": "video",
    "VideoFrame": "video",
    "VideoInfo": "video",
    "iter_batches": "video",
    "iter_frames": "video",
    "probe_video": "video",
    "RawYUVSpec": "yuv",
    "parse_fps": "yuv",
    "parse_size": "yuv",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qualitas.io' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qualitas.io.{module}"), name)


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FrameBatch",
    "ImageData",
    "Pair",
    "RawYUVSpec",
    "VideoFrame",
    "VideoInfo",
    "check_fps",
    "collect_pairs",
    "is_media",
    "iter_batches",
    "iter_frames",
    "match_size",
    "media_kind",
    "parse_fps",
    "parse_size",
    "probe_video",
    "read_image",
    "size_note",
]

"""Reading media: still images, streamed video, raw YUV, and full-reference pairing.

Everything returns float32 RGB tensors in ``[0, 1]``: ``(3, H, W)`` per image or frame,
``(B, 3, H, W)`` per batch. See docs/media-io.md for the rules (bit depth, alpha, EXIF
orientation, YUV matrices, rotation, frame selection, truncated files).
"""

from __future__ import annotations

from qualitas.io.image import ImageData, read_image
from qualitas.io.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_media, media_kind
from qualitas.io.pairing import Pair, check_fps, collect_pairs, match_size, size_note
from qualitas.io.video import FrameBatch, VideoFrame, VideoInfo, iter_batches, iter_frames, probe_video
from qualitas.io.yuv import RawYUVSpec, parse_fps, parse_size

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

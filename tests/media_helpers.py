"""Media writers shared by the test suites (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int = 25,
    *,
    codec: str = "libx264",
    crf: int = 18,
    options: dict[str, str] | None = None,
    faststart: bool = False,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode RGB uint8 frames (n, H, W, 3) to ``path`` with PyAV (``pix_fmt``, yuv420p).

    libx264 uses ``crf`` (preset ultrafast) unless ``options`` are given; other codecs take
    ``options`` as is (e.g. mpeg4 ``{"qscale": "2"}``). ``faststart`` puts the MP4 index
    first (then a truncated copy still opens).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if options is None and codec == "libx264":
        options = {"crf": str(crf), "preset": "ultrafast"}
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else None) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path

"""Helpers for the media I/O tests: tiny images and videos made on the fly.

Videos are encoded losslessly from known YUV planes (libx264 -qp 0, ffv1), so decoded
RGB can be checked against a float reference conversion written here independently.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import av
import numpy as np

# (Kr, Kb) per matrix, from the standards (BT.709-6, BT.601-7).
K = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}
SUBSAMPLING = {"420": (2, 2), "422": (2, 1), "444": (1, 1)}  # (dx, dy)


def reference_rgb(y, u, v, bits: int, matrix: str, full_range: bool = False) -> np.ndarray:
    """Float64 RGB (3,H,W) from full-resolution Y, Cb, Cr sample arrays (textbook formulas)."""
    y, u, v = (np.asarray(a, dtype=np.float64) for a in (y, u, v))
    if full_range:
        top = 2**bits - 1
        Y, Cb, Cr = y / top, (u - 2 ** (bits - 1)) / top, (v - 2 ** (bits - 1)) / top
    else:
        s = 2 ** (bits - 8)
        Y, Cb, Cr = (y - 16 * s) / (219 * s), (u - 128 * s) / (224 * s), (v - 128 * s) / (224 * s)
    kr, kb = K[matrix]
    kg = 1 - kr - kb
    r = Y + 2 * (1 - kr) * Cr
    b = Y + 2 * (1 - kb) * Cb
    g = (Y - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b]), 0.0, 1.0)


def upsample(c: np.ndarray, dx: int, dy: int, h: int, w: int) -> np.ndarray:
    return np.repeat(np.repeat(c, dy, axis=0), dx, axis=1)[:h, :w]


def random_planes(h: int, w: int, bits: int, sub: str, seed: int = 0, block: int = 1):
    """Random legal-range Y, Cb, Cr planes (chroma subsampled); ``block`` > 1 makes flat blocks."""
    rng = np.random.default_rng(seed)
    s = 2 ** (bits - 8)
    dx, dy = SUBSAMPLING[sub]
    ch, cw = -(-h // dy), -(-w // dx)
    dtype = np.uint16 if bits > 8 else np.uint8

    def plane(rows, cols, lo, hi):
        small = rng.integers(lo * s, hi * s + 1, (-(-rows // block), -(-cols // block)))
        return np.kron(small, np.ones((block, block), dtype=np.int64))[:rows, :cols].astype(dtype)

    return plane(h, w, 16, 235), plane(ch, cw, 16, 240), plane(ch, cw, 16, 240)


def fill_frame(frame, planes) -> None:
    for plane, arr in zip(frame.planes, planes):
        buf = np.frombuffer(plane, dtype=arr.dtype).reshape(plane.height, plane.line_size // arr.itemsize)
        buf[: arr.shape[0], : arr.shape[1]] = arr


def encode_planes(
    path: Path, frames, pix_fmt: str, codec: str = "libx264", rate: int = 25, options=None, colorspace=None
):
    """Encode a list of (y, u, v) plane tuples; lossless for libx264 (-qp 0) and ffv1."""
    h, w = frames[0][0].shape
    opts = {"qp": "0"} if codec == "libx264" else {}
    opts.update(options or {})
    with av.open(str(path), "w") as c:
        st = c.add_stream(codec, rate=rate)
        st.width, st.height, st.pix_fmt = w, h, pix_fmt
        st.options = opts
        if colorspace is not None:
            st.codec_context.colorspace = colorspace
        for i, planes in enumerate(frames):
            f = av.VideoFrame(w, h, pix_fmt)
            fill_frame(f, planes)
            if colorspace is not None:
                f.colorspace = colorspace
            f.pts = i
            for pkt in st.encode(f):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return path


def encode_rgb(
    path: Path, n: int, h: int = 48, w: int = 64, rate: int = 25, gop: int | None = None, movflags=None
):
    """A small libx264 yuv420p clip whose frame i is a flat grey of level 20 + 4*i (easy to identify)."""
    opts = {"crf": "18"}
    if gop:
        opts.update({"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"})
    copts = {"movflags": movflags} if movflags else {}
    with av.open(str(path), "w", options=copts) as c:
        st = c.add_stream("libx264", rate=rate)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = opts
        for i in range(n):
            img = np.full((h, w, 3), 20 + 4 * i, dtype=np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for pkt in st.encode(f):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return path


def write_png16(path: Path, arr: np.ndarray) -> Path:
    """Minimal 16-bit PNG writer (gray (H,W) or RGB(A) (H,W,C)), independent of the reader."""
    h, w = arr.shape[:2]
    colour_type = {1: 0, 3: 2, 4: 6}[1 if arr.ndim == 2 else arr.shape[2]]
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", *args], check=True, capture_output=True
    )

"""Raw, headerless planar YUV files (``.yuv``), the usual input of VMAF users.

A raw file carries no size, format or rate, so the caller gives them in a ``RawYUVSpec``
(CLI: ``--size WxH --pix-fmt yuv420p --fps 25``). Frames are read one at a time with
numpy (seeking straight to the frames wanted) and converted to RGB by the same
``yuv_to_rgb`` as decoded video, so a raw reference and an encoded distorted copy of the
same content give the same RGB. Untagged raw YUV is limited range, BT.709 for >= 720
lines and BT.601 below, unless the spec says otherwise.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from qualitas.errors import MediaError, UsageError

__all__ = ["RAW_PIX_FMTS", "RawYUVSpec", "parse_size", "parse_fps"]

# pix_fmt -> (chroma width divisor, chroma height divisor, bytes per sample)
RAW_PIX_FMTS: dict[str, tuple[int, int, int]] = {
    "yuv420p": (2, 2, 1),
    "yuv422p": (2, 1, 1),
    "yuv444p": (1, 1, 1),
    "yuv420p10le": (2, 2, 2),
    "yuv422p10le": (2, 1, 2),
    "yuv444p10le": (1, 1, 2),
}
_MATRICES = ("bt709", "bt601", "bt2020")


def parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> ``(1920, 1080)`` (width, height)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise UsageError(f"invalid size {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080")
    return int(m.group(1)), int(m.group(2))


def parse_fps(text: str | float | Fraction) -> Fraction:
    """``"25"``, ``"29.97"`` or ``"30000/1001"`` -> ``Fraction`` (> 0)."""
    try:
        value = Fraction(str(text).strip()).limit_denominator(1_000_000)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"invalid frame rate {text!r}: expected e.g. 25, 29.97 or 30000/1001") from None
    if value <= 0:
        raise UsageError(f"invalid frame rate {text!r}: must be > 0")
    return value


@dataclass(frozen=True)
class RawYUVSpec:
    """Geometry and format of a raw ``.yuv`` file.

    ``pix_fmt`` is one of ``RAW_PIX_FMTS``; ``fps`` a number or ``"30000/1001"``;
    ``matrix`` ``None`` (BT.709 for >= 720 lines, else BT.601), ``"bt709"``, ``"bt601"`` or
    ``"bt2020"``; ``full_range`` for full-range (JPEG) samples.
    """

    width: int
    height: int
    pix_fmt: str = "yuv420p"
    fps: float | Fraction | str = 25
    matrix: str | None = None
    full_range: bool = False

    def __post_init__(self) -> None:
        if self.pix_fmt not in RAW_PIX_FMTS:
            raise UsageError(
                f"unsupported raw pix_fmt {self.pix_fmt!r}; choose from {', '.join(RAW_PIX_FMTS)}"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise UsageError(f"invalid raw YUV size {self.width}x{self.height}")
        if self.matrix is not None and self.matrix not in _MATRICES:
            raise UsageError(f"unknown matrix {self.matrix!r}; choose from {', '.join(_MATRICES)}")
        object.__setattr__(self, "fps", parse_fps(self.fps))

    @property
    def fps_fraction(self) -> Fraction:
        return self.fps  # normalised to a Fraction in __post_init__

    @property
    def bit_depth(self) -> int:
        return 10 if self.pix_fmt.endswith("10le") else 8

    def plane_shapes(self) -> list[tuple[int, int]]:
        """``(rows, columns)`` of the Y, U and V planes (chroma rounded up, as ffmpeg does)."""
        dx, dy, _ = RAW_PIX_FMTS[self.pix_fmt]
        cw, ch = -(-self.width // dx), -(-self.height // dy)
        return [(self.height, self.width), (ch, cw), (ch, cw)]

    @property
    def frame_bytes(self) -> int:
        bps = RAW_PIX_FMTS[self.pix_fmt][2]
        return sum(r * c for r, c in self.plane_shapes()) * bps

    @property
    def matrix_name(self) -> str:
        from qualitas.io._convert import default_matrix

        return self.matrix or default_matrix(self.height)


def count_frames(path: str | os.PathLike, spec: RawYUVSpec) -> int:
    """Whole frames in a raw file; ``MediaError`` when its size leaves a partial frame."""
    size = Path(path).stat().st_size
    n, rest = divmod(size, spec.frame_bytes)
    if rest:
        raise MediaError(
            f"{path}: size {size} bytes is not a whole number of {spec.width}x{spec.height} "
            f"{spec.pix_fmt} frames ({spec.frame_bytes} bytes each): {n} frames + {rest} bytes; "
            "check --size and --pix-fmt"
        )
    if n == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    return n


def read_raw_frames(
    path: str | os.PathLike, spec: RawYUVSpec, indices: Iterator[int]
) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Yield ``(index, (y, u, v))`` integer plane views (numpy) for the requested frame indices.

    Each frame is read with one ``readinto`` into a reused buffer (seeking straight to
    it), so the views are overwritten by the next frame: convert before advancing.
    """
    dtype = np.dtype("<u2") if spec.bit_depth > 8 else np.dtype(np.uint8)
    shapes = spec.plane_shapes()
    raw = np.empty(spec.frame_bytes, dtype=np.uint8)
    samples = raw.view(dtype)
    bounds = np.cumsum([0] + [r * c for r, c in shapes])
    planes = tuple(samples[lo:hi].reshape(shape) for shape, lo, hi in zip(shapes, bounds[:-1], bounds[1:]))
    with open(path, "rb") as fh:
        for index in indices:
            fh.seek(index * spec.frame_bytes)
            got = fh.readinto(raw)
            if got != spec.frame_bytes:
                raise MediaError(f"{path}: frame {index} is cut short ({got} of {spec.frame_bytes} bytes)")
            yield index, planes


def layout_warnings(path: str | os.PathLike, spec: RawYUVSpec, frames: int = 4) -> list[str]:
    """Checks of a raw file against its declared layout, from the samples of its first
    ``frames`` frames. A raw file has no header, so a wrong ``--pix-fmt``/``--size`` whose
    frame size happens to divide the file is otherwise silent; these catch the usual ones:

    * 10-bit formats: samples above 1023 cannot be 10-bit (8-bit data read as 10-bit);
    * 8-bit formats: every second byte of the luma at most 3 looks like 10-bit
      little-endian samples read as 8-bit;
    * consecutive frames whose luma contrast differs many-fold: frame boundaries fall in
      the wrong places (e.g. yuv444p read as yuv420p), so chroma is read as luma.

    Returns one-line warnings (empty: nothing suspicious; not a proof the layout is right).
    """
    n = min(frames, count_frames(path, spec))
    out: list[str] = []
    lumas = [y.astype(np.float64) for _, (y, _u, _v) in read_raw_frames(path, spec, iter(range(n)))]
    hint = f"check --size/--pix-fmt ({spec.width}x{spec.height} {spec.pix_fmt} declared)"
    if spec.bit_depth > 8:
        peak = max(float(y.max()) for y in lumas)
        if peak > 2**spec.bit_depth - 1:
            out.append(f"samples up to {peak:.0f} do not fit {spec.bit_depth} bits: 8-bit data? {hint}")
            return out
    else:
        raw = np.fromfile(path, dtype=np.uint8, count=spec.width * spec.height)
        odd, even = raw[1::2], raw[0::2]
        if (
            odd.size > 64
            and int(odd.max()) <= 3
            and int(even.max()) > 3
            and float(even.std()) > 4 * float(odd.std())
        ):
            out.append(f"every second luma byte is <= 3, as in 10-bit little-endian samples: {hint}")
            return out
    stds = [float(y.std(ddof=1)) if y.size > 1 else math.nan for y in lumas]  # sample std, as torch's
    for a, b in zip(stds, stds[1:]):
        lo, hi = min(a, b), max(a, b)
        if hi > 8.0 and hi > 4.0 * max(lo, 0.5):
            out.append(
                f"luma contrast jumps between consecutive frames (std {a:.1f} -> {b:.1f}), as when "
                f"frame boundaries are misplaced: {hint}"
            )
            break
    return out

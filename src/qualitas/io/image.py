"""Reading still images (PNG, JPEG, BMP, TIFF, WebP; 8- and 16-bit) into float tensors.

Rules (see docs/media-io.md):

- Output is float32 ``(3, H, W)`` RGB in ``[0, 1]``: integer samples divided by
  ``2**bit_depth - 1``.
- Grayscale is replicated to three channels; palette images are expanded to RGB;
  CMYK/YCbCr/LAB are converted to RGB by Pillow.
- Alpha is dropped: colour channels are kept exactly as stored (no compositing over a
  background). ``ImageData.mode`` keeps the source mode (e.g. ``"RGBA"``) so callers can
  record that an alpha channel was ignored.
- EXIF orientation is applied (same result as ``PIL.ImageOps.exif_transpose``).
- 16-bit colour PNG/TIFF, which Pillow silently reduces to 8 bits, are decoded with
  FFmpeg (through PyAV) at full precision.
- The file must decode completely: truncated or corrupt files raise ``MediaError``.
  Multi-frame files (TIFF pages, animated WebP) give their first frame.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import (
    BmpImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from qualitas.errors import MediaError, one_line
from qualitas.io._convert import apply_orientation, hwc_to_tensor, planes_to_float
from qualitas.io.media import IMAGE_EXTENSIONS, check_readable

__all__ = ["IMAGE_EXTENSIONS", "ImageData", "read_image"]

# Pillow plug-ins tried on a file; limiting them keeps untrusted input away from rarely
# used decoders. (The JPEG opener also returns camera MPO files.)
_PIL_FORMATS = tuple(
    plugin.format
    for plugin in (
        PngImagePlugin.PngImageFile,
        JpegImagePlugin.JpegImageFile,
        BmpImagePlugin.BmpImageFile,
        TiffImagePlugin.TiffImageFile,
        WebPImagePlugin.WebPImageFile,
    )
)
_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class ImageData:
    """A decoded image.

    ``data``: float32 ``(3, H, W)`` in ``[0, 1]``; ``bit_depth``: bits per stored sample
    (8 or 16); ``mode``: the source's Pillow mode (``"RGB;16"``/``"RGBA;16"``/``"LA;16"`` for
    16-bit colour files); ``orientation``: the EXIF orientation that was applied (1 = none).
    """

    data: torch.Tensor
    bit_depth: int
    path: str
    mode: str
    orientation: int = 1

    @property
    def height(self) -> int:
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        return int(self.data.shape[2])


def read_image(path: str | os.PathLike) -> ImageData:
    """Read an image file as float32 ``(3, H, W)`` RGB in ``[0, 1]``.

    Raises ``MediaError`` (one line) for a missing, empty, unsupported, corrupt or
    truncated file.
    """
    p = check_readable(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise MediaError(f"{path}: unsupported image extension {p.suffix or '(none)'}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone switched Pillow to accept truncated files; we still want them as errors.
        warnings.warn("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated images may decode", stacklevel=2)
    try:
        with Image.open(p, formats=_PIL_FORMATS) as im:
            orientation = _orientation(im)
            wide = _sixteen_bit_colour(p, im)
            if wide is not None:
                chw, mode = _read_16bit_colour(p, wide), wide
                bit_depth = 16
            else:
                im.load()
                chw, bit_depth, mode = _pil_to_chw(im, path)
    except MediaError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        # UnidentifiedImageError and "image file is truncated" are OSErrors.
        # Pillow names the file again ("cannot identify image file '/x/y.png'"): once is enough.
        reason = one_line(err).replace(f" '{p}'", "").replace(f" {str(p)!r}", "")
        raise MediaError(f"{path}: cannot decode image ({reason})") from None
    chw = apply_orientation(chw, orientation)
    data = planes_to_float(chw, float(2**bit_depth - 1))
    return ImageData(data=data, bit_depth=bit_depth, path=str(path), mode=mode, orientation=orientation)


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except (ValueError, TypeError, OSError, SyntaxError):
        return 1  # unreadable EXIF block: show the pixels as stored
    return value if 1 <= value <= 8 else 1


def _pil_to_chw(im: Image.Image, path: str | os.PathLike) -> tuple[torch.Tensor, int, str]:
    """Pillow image -> integer ``(C, H, W)`` view (C = 1 or 3), bit depth, source mode."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return hwc_to_tensor(np.asarray(im)), 8, mode
    if mode == "RGBA":
        return hwc_to_tensor(np.asarray(im))[:3], 8, mode
    if mode == "LA":
        return hwc_to_tensor(np.asarray(im))[:1], 8, mode
    if mode.startswith("I;16"):
        return hwc_to_tensor(np.asarray(im)), 16, mode
    if mode == "I":
        # 32-bit integer mode: only accepted when the file declares 16-bit samples
        # (older Pillow versions open 16-bit grayscale this way).
        arr = np.asarray(im)
        if _declared_bits(im) == 16 and arr.min() >= 0 and arr.max() <= 65535:
            return hwc_to_tensor(arr.astype(np.uint16)), 16, mode
        raise MediaError(f"{path}: unsupported image mode I (32-bit integer samples)")
    if mode == "F":
        raise MediaError(f"{path}: unsupported image mode F (floating-point samples)")
    if mode == "1":
        return hwc_to_tensor(np.asarray(im.convert("L"))), 8, mode
    # P, PA, CMYK, YCbCr, LAB, HSV, RGBX, RGBa ...: let Pillow convert to RGB. For palette
    # images with transparency this keeps the palette colours and drops alpha.
    return hwc_to_tensor(np.asarray(im.convert("RGB"))), 8, mode


def _declared_bits(im: Image.Image) -> int | None:
    tag = getattr(im, "tag_v2", None)
    if tag is not None and 258 in tag:
        bits = tag[258]
        bits = bits if isinstance(bits, tuple) else (bits,)
        return int(max(bits))
    return None


def _sixteen_bit_colour(path: Path, im: Image.Image) -> str | None:
    """Mode name (``"RGB;16"``, ``"RGBA;16"``, ``"LA;16"``) when a 16-bit file has colour or
    alpha samples that Pillow would reduce to 8 bits; ``None`` otherwise."""
    if im.format == "PNG":
        with open(path, "rb") as fh:
            head = fh.read(26)
        # IHDR is always the first chunk: bit depth at byte 24, colour type at byte 25.
        if len(head) == 26 and head.startswith(_PNG_SIGNATURE) and head[24] == 16:
            return {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}.get(head[25])
        return None
    if im.format == "TIFF":
        tag = getattr(im, "tag_v2", {})
        bits = tag.get(258)
        if isinstance(bits, tuple) and len(bits) >= 2 and max(bits) == 16:
            return {2: "LA;16", 3: "RGB;16"}.get(len(bits), "RGBA;16")
    return None


def _read_16bit_colour(path: Path, mode: str) -> torch.Tensor:
    """Decode a 16-bit colour PNG/TIFF with FFmpeg; returns a uint16 ``(C, H, W)`` view."""
    import av  # local: only this rare path needs FFmpeg for stills

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            # swscale drops alpha without compositing, like the 8-bit path.
            arr = frame.to_ndarray(format="gray16le" if mode == "LA;16" else "rgb48le")
    except (av.FFmpegError, StopIteration) as err:
        raise MediaError(f"{path}: cannot decode 16-bit image ({one_line(err)})") from None
    return hwc_to_tensor(arr)

"""Still images: formats, bit depths, grayscale/palette/alpha rules, EXIF orientation, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from io_helpers import write_png16
from PIL import Image, ImageOps

from qualitas.errors import MediaError
from qualitas.io.image import read_image


def chw(arr: np.ndarray) -> np.ndarray:
    return np.moveaxis(arr, -1, 0) if arr.ndim == 3 else np.stack([arr] * 3)


@pytest.fixture
def rgb8():
    return np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "ext, kwargs",
    [
        ("png", {}),
        ("bmp", {}),
        ("tif", {}),
        ("tiff", {"compression": "tiff_lzw"}),
        ("webp", {"lossless": True}),
    ],
)
def test_lossless_8bit_formats_exact(tmp_path, rgb8, ext, kwargs):
    path = tmp_path / f"x.{ext}"
    Image.fromarray(rgb8).save(path, **kwargs)
    img = read_image(path)
    assert img.data.dtype == torch.float32 and img.data.shape == (3, 20, 30) and img.data.is_contiguous()
    assert img.bit_depth == 8 and img.mode == "RGB" and (img.height, img.width) == (20, 30)
    np.testing.assert_array_equal(img.data.numpy() * 255.0, chw(rgb8).astype(np.float32))


def test_jpeg_close_to_source(tmp_path):
    y, x = np.mgrid[0:64, 0:64]
    smooth = np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8)
    path = tmp_path / "smooth.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    img = read_image(path)
    assert img.bit_depth == 8 and img.data.shape == (3, 64, 64)
    assert np.abs(img.data.numpy() * 255 - chw(smooth)).mean() < 2.0


def test_16bit_grayscale_png_full_precision(tmp_path):
    gray = (np.arange(12 * 10).reshape(12, 10) * 541 % 65536).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(gray).save(path)  # Pillow writes I;16 PNGs
    img = read_image(path)
    assert img.bit_depth == 16 and img.mode.startswith("I;16")
    np.testing.assert_allclose(img.data.numpy(), chw(gray) / 65535.0, rtol=0, atol=1e-7)


@pytest.mark.parametrize("channels, mode", [(3, "RGB;16"), (4, "RGBA;16")])
def test_16bit_colour_png_not_reduced_to_8bit(tmp_path, channels, mode):
    arr = (np.arange(9 * 7 * channels).reshape(9, 7, channels) * 977 % 65536).astype(np.uint16)
    img = read_image(write_png16(tmp_path / "c16.png", arr))
    assert img.bit_depth == 16 and img.mode == mode
    # Exact 16-bit values (an 8-bit detour would be off by up to 128/65535); alpha dropped.
    np.testing.assert_allclose(img.data.numpy(), chw(arr[..., :3]) / 65535.0, rtol=0, atol=1e-7)


def test_16bit_rgb_tiff(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    arr = (np.arange(8 * 10 * 3).reshape(8, 10, 3) * 271 % 65536).astype(np.uint16)
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, arr, photometric="rgb")
    img = read_image(path)
    assert img.bit_depth == 16 and img.mode == "RGB;16"
    np.testing.assert_allclose(img.data.numpy(), chw(arr) / 65535.0, rtol=0, atol=1e-7)


def test_grayscale_replicated(tmp_path, rgb8):
    path = tmp_path / "g.png"
    Image.fromarray(rgb8[..., 1]).save(path)
    img = read_image(path)
    assert img.mode == "L" and img.data.shape == (3, 20, 30)
    assert torch.equal(img.data[0], img.data[1]) and torch.equal(img.data[0], img.data[2])
    np.testing.assert_array_equal(img.data[0].numpy() * 255, rgb8[..., 1].astype(np.float32))


def test_alpha_dropped_colour_kept_as_stored(tmp_path, rgb8):
    alpha = np.zeros((20, 30), np.uint8)  # fully transparent: colours must still come through
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([rgb8, alpha])).save(path)
    img = read_image(path)
    assert img.mode == "RGBA"
    np.testing.assert_array_equal(img.data.numpy() * 255, chw(rgb8).astype(np.float32))


def test_palette_and_bilevel(tmp_path, rgb8):
    pal = Image.fromarray(rgb8).convert("P")
    pal.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.mode == "P"
    np.testing.assert_array_equal(
        img.data.numpy() * 255, chw(np.asarray(pal.convert("RGB"))).astype(np.float32)
    )
    Image.fromarray(rgb8[..., 0] > 127).save(tmp_path / "b.png")
    bw = read_image(tmp_path / "b.png")
    assert bw.mode == "1" and set(np.unique(bw.data.numpy()).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, rgb8, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(rgb8).save(path, exif=exif)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    img = read_image(path)
    assert img.orientation == orientation
    np.testing.assert_array_equal(img.data.numpy() * 255, chw(expected).astype(np.float32))


def test_exif_rotated_jpeg(tmp_path):
    # Left half bright, right half dark, stored 40 wide x 20 high; orientation 6 means
    # "rotate 90 clockwise to display": displayed 20 wide x 40 high, bright half on top.
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 230
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    img = read_image(path)
    assert img.data.shape == (3, 40, 20) and img.orientation == 6
    assert img.data[:, :18].mean() > 0.85 and img.data[:, 22:].mean() < 0.1


def test_one_pixel_image(tmp_path):
    Image.fromarray(np.array([[[10, 20, 30]]], np.uint8)).save(tmp_path / "one.png")
    img = read_image(tmp_path / "one.png")
    assert img.data.shape == (3, 1, 1)
    np.testing.assert_allclose(img.data.flatten().numpy(), np.array([10, 20, 30]) / 255.0, atol=1e-7)


def _jpeg_bytes(rgb8) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "case", ["truncated", "garbage", "text", "empty", "missing", "unsupported", "folder"]
)
def test_bad_images_raise_one_line_media_error(tmp_path, rgb8, case):
    path = tmp_path / "bad.jpg"
    if case == "truncated":
        data = _jpeg_bytes(rgb8)
        path.write_bytes(data[: len(data) // 2])
    elif case == "garbage":
        path.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)))
    elif case == "text":
        path.write_text("this is not an image\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "unsupported":
        path = tmp_path / "x.gif"
        Image.fromarray(rgb8).save(path)
    elif case == "folder":
        path = tmp_path / "dir.png"
        path.mkdir()
    with pytest.raises(MediaError) as err:
        read_image(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg

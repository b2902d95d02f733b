"""Synthetic image distortions of the KADID-10k family, 5 levels each, deterministic per seed.

Each distortion is a pure function ``fn(img, param, rng) -> img`` on ``uint8`` arrays of
shape ``(H, W, 3)`` (RGB), returning the same shape; ``param`` comes from the distortion's
5-entry level table (level 1 = mildest), ``rng`` is a ``numpy.random.Generator`` seeded per
(seed, content, type, level) by :func:`item_rng`, so a run is reproducible bit for bit.
Quality decreases monotonically with the level for every type (so same-content,
same-type pairs are valid ranking pairs). Parameters are listed in docs/data.md.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, features
from scipy import ndimage, signal

from qualitas.errors import DependencyError, UsageError
from qualitas.registry import Registry

Array = np.ndarray
NUM_LEVELS = 5


@dataclass(frozen=True)
class Distortion:
    """A named distortion with its level table (``params[level - 1]``)."""

    name: str
    fn: Callable[[Array, float, np.random.Generator], Array]
    params: tuple[float, ...]
    unit: str
    family: str

    def __call__(self, img: Array, level: int, rng: np.random.Generator) -> Array:
        if not 1 <= level <= len(self.params):
            raise UsageError(f"{self.name}: level must be 1..{len(self.params)}, got {level}")
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected uint8 (H,W,3), got {img.dtype} {img.shape}")
        out = self.fn(img, self.params[level - 1], rng)
        if out.shape != img.shape or out.dtype != np.uint8:  # internal invariant
            raise RuntimeError(f"{self.name} returned {out.dtype} {out.shape} for {img.shape}")
        return out


DISTORTIONS: Registry[Distortion] = Registry("distortions")


def distortion(name: str, params: Sequence[float], *, unit: str, family: str):
    """Register ``fn`` as distortion ``name`` with a 5-level parameter table."""
    if len(params) != NUM_LEVELS:
        raise ValueError(f"{name}: need {NUM_LEVELS} levels")

    def deco(fn: Callable[[Array, float, np.random.Generator], Array]):
        DISTORTIONS.add(name, Distortion(name, fn, tuple(params), unit, family))
        return fn

    return deco


def item_rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator seeded from ``seed`` and the item's keys (stable across runs and processes)."""
    digest = hashlib.sha256(repr((int(seed),) + tuple(str(k) for k in keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def apply(img: Array, name: str, level: int, *, seed: int = 0, content: str = "") -> Array:
    """Apply distortion ``name`` at ``level`` to ``img`` with the per-item generator."""
    return DISTORTIONS.get(name)(img, level, item_rng(seed, content, name, level))


# ----------------------------------------------------------------------------- helpers


def _f(img: Array) -> Array:
    return img.astype(np.float64) / 255.0


def _u8(x: Array) -> Array:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _convolve(img: Array, kernel: Array) -> Array:
    """Per-channel 2-D convolution with edge replication (FFT: fast for big kernels)."""
    k = kernel / kernel.sum()
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    x = np.pad(_f(img), ((ph, ph), (pw, pw), (0, 0)), mode="edge")
    out = np.stack([signal.oaconvolve(x[..., c], k, mode="valid") for c in range(3)], axis=-1)
    return _u8(out)


def _codec_roundtrip(img: Array, fmt: str, **params) -> Array:
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format=fmt, **params)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


# BT.601 full-range (JPEG) RGB <-> YCbCr, values in [0, 1].
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_INV = np.linalg.inv(_YCC)


def _to_ycbcr(x: Array) -> Array:
    return x @ _YCC.T + np.array([0.0, 0.5, 0.5])


def _from_ycbcr(y: Array) -> Array:
    return (y - np.array([0.0, 0.5, 0.5])) @ _YCC_INV.T


def _luma(x: Array) -> Array:
    return x @ _YCC[0]


# ----------------------------------------------------------------------------- blur


@distortion("gaussian_blur", (0.5, 1.0, 2.0, 3.5, 5.0), unit="sigma (px)", family="blur")
def gaussian_blur(img: Array, sigma: float, rng: np.random.Generator) -> Array:
    return _u8(ndimage.gaussian_filter(_f(img), sigma=(sigma, sigma, 0), mode="nearest", truncate=3.0))


@distortion("lens_blur", (1.0, 2.0, 3.5, 5.5, 8.0), unit="disk radius (px)", family="blur")
def lens_blur(img: Array, radius: float, rng: np.random.Generator) -> Array:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    # Anti-aliased disk: the covered fraction of each pixel, approximated on a 4x4 grid.
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    cover = np.zeros(yy.shape)
    for dy in sub:
        for dx in sub:
            cover += ((yy + dy) ** 2 + (xx + dx) ** 2) <= radius**2
    return _convolve(img, cover)


@distortion("motion_blur", (3.0, 7.0, 13.0, 19.0, 27.0), unit="length (px), random angle", family="blur")
def motion_blur(img: Array, length: float, rng: np.random.Generator) -> Array:
    angle = rng.uniform(0, np.pi)
    n = int(length) | 1
    c = n // 2
    kernel = np.zeros((n, n))
    # Sample the line densely so every angle gives a connected kernel.
    for t in np.linspace(-c, c, 4 * n):
        kernel[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] += 1.0
    return _convolve(img, kernel)


# ----------------------------------------------------------------------------- compression


@distortion("jpeg", (50, 25, 12, 6, 2), unit="Pillow quality", family="compression")
def jpeg(img: Array, quality: float, rng: np.random.Generator) -> Array:
    return _codec_roundtrip(img, "JPEG", quality=int(quality), subsampling=2, optimize=False)


@distortion("jpeg2000", (12, 24, 48, 96, 192), unit="compression ratio", family="compression")
def jpeg2000(img: Array, ratio: float, rng: np.random.Generator) -> Array:
    if not features.check("jpg_2000"):
        raise DependencyError("jpeg2000 needs Pillow built with OpenJPEG (features.check('jpg_2000'))")
    return _codec_roundtrip(
        img, "JPEG2000", quality_mode="rates", quality_layers=[float(ratio)], irreversible=True
    )


@distortion("webp", (60, 30, 15, 6, 1), unit="Pillow quality", family="compression")
def webp(img: Array, quality: float, rng: np.random.Generator) -> Array:
    if not features.check("webp"):
        raise DependencyError("webp needs Pillow built with libwebp")
    return _codec_roundtrip(img, "WEBP", quality=int(quality), method=4)


# ----------------------------------------------------------------------------- noise


@distortion(
    "white_noise", (0.001, 0.002, 0.004, 0.008, 0.016), unit="variance (RGB, [0,1] scale)", family="noise"
)
def white_noise(img: Array, var: float, rng: np.random.Generator) -> Array:
    x = _f(img)
    return _u8(x + rng.normal(0.0, np.sqrt(var), size=x.shape))


@distortion(
    "color_noise", (0.001, 0.002, 0.004, 0.008, 0.016), unit="chroma variance (Y gets 1/4)", family="noise"
)
def color_noise(img: Array, var: float, rng: np.random.Generator) -> Array:
    # Noise in YCbCr, mostly in the chroma planes: coloured speckle at moderate luma noise.
    y = _to_ycbcr(_f(img))
    std = np.sqrt(np.array([var / 4, var, var]))
    return _u8(_from_ycbcr(y + rng.normal(0.0, 1.0, size=y.shape) * std))


@distortion("impulse_noise", (0.005, 0.01, 0.03, 0.06, 0.1), unit="salt-and-pepper density", family="noise")
def impulse_noise(img: Array, density: float, rng: np.random.Generator) -> Array:
    out = img.copy()
    u = rng.random(img.shape)
    out[u < density / 2] = 0
    out[(u >= density / 2) & (u < density)] = 255
    return out


@distortion("multiplicative_noise", (0.005, 0.01, 0.025, 0.05, 0.1), unit="speckle variance", family="noise")
def multiplicative_noise(img: Array, var: float, rng: np.random.Generator) -> Array:
    x = _f(img)
    return _u8(x + x * rng.normal(0.0, np.sqrt(var), size=x.shape))


# ----------------------------------------------------------------------------- colour / brightness


@distortion("brighten", (1.25, 1.5, 1.8, 2.2, 2.8), unit="gamma (out = in^(1/g))", family="brightness")
def brighten(img: Array, gamma: float, rng: np.random.Generator) -> Array:
    return _u8(_f(img) ** (1.0 / gamma))


@distortion("darken", (1.25, 1.5, 1.8, 2.2, 2.8), unit="gamma (out = in^g)", family="brightness")
def darken(img: Array, gamma: float, rng: np.random.Generator) -> Array:
    return _u8(_f(img) ** gamma)


@distortion(
    "mean_shift",
    (0.04, 0.08, 0.12, 0.18, 0.25),
    unit="shift of all values (random sign)",
    family="brightness",
)
def mean_shift(img: Array, shift: float, rng: np.random.Generator) -> Array:
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return _u8(_f(img) + sign * shift)


@distortion(
    "contrast_change", (0.8, 0.65, 0.5, 0.35, 0.2), unit="contrast factor around the mean", family="colour"
)
def contrast_change(img: Array, factor: float, rng: np.random.Generator) -> Array:
    x = _f(img)
    mean = _luma(x).mean()
    return _u8(mean + (x - mean) * factor)


@distortion(
    "saturation_change", (0.7, 0.5, 0.3, 0.15, 0.0), unit="saturation factor (0 = gray)", family="colour"
)
def saturation_change(img: Array, factor: float, rng: np.random.Generator) -> Array:
    x = _f(img)
    gray = _luma(x)[..., None]
    return _u8(gray + (x - gray) * factor)


@distortion("color_quantization", (64, 32, 16, 8, 4), unit="number of colours (median cut)", family="colour")
def color_quantization(img: Array, colors: float, rng: np.random.Generator) -> Array:
    im = Image.fromarray(img, "RGB").quantize(
        colors=int(colors), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


# ----------------------------------------------------------------------------- spatial


@distortion("pixelate", (2, 3, 5, 8, 12), unit="block size (px)", family="spatial")
def pixelate(img: Array, block: float, rng: np.random.Generator) -> Array:
    h, w = img.shape[:2]
    b = int(block)
    small = Image.fromarray(img, "RGB").resize((max(1, w // b), max(1, h // b)), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.NEAREST), dtype=np.uint8).copy()


@distortion(
    "downscale_upscale",
    (1.5, 2.0, 3.0, 4.0, 6.0),
    unit="scale factor (bicubic down, bicubic up)",
    family="spatial",
)
def downscale_upscale(img: Array, factor: float, rng: np.random.Generator) -> Array:
    h, w = img.shape[:2]
    im = Image.fromarray(img, "RGB")
    small = im.resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.Resampling.BICUBIC)
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.uint8).copy()


@distortion("jitter", (0.5, 1.0, 2.0, 3.0, 4.5), unit="max pixel displacement (px)", family="spatial")
def jitter(img: Array, amount: float, rng: np.random.Generator) -> Array:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy = rng.uniform(-amount, amount, size=(h, w))
    dx = rng.uniform(-amount, amount, size=(h, w))
    coords = [np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)]
    x = _f(img)
    out = np.stack(
        [ndimage.map_coordinates(x[..., c], coords, order=1, mode="nearest") for c in range(3)], axis=-1
    )
    return _u8(out)


@distortion("color_block", (2, 4, 6, 9, 12), unit="number of random-colour blocks", family="spatial")
def color_block(img: Array, count: float, rng: np.random.Generator) -> Array:
    h, w = img.shape[:2]
    size = max(2, min(h, w) // 12)
    out = img.copy()
    for _ in range(int(count)):
        y, x = int(rng.integers(0, max(1, h - size + 1))), int(rng.integers(0, max(1, w - size + 1)))
        out[y : y + size, x : x + size] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return out


@distortion(
    "non_eccentricity_patch",
    (10, 20, 40, 70, 100),
    unit="patches moved to a nearby position",
    family="spatial",
)
def non_eccentricity_patch(img: Array, count: float, rng: np.random.Generator) -> Array:
    # Patches copied from a random neighbouring offset, as KADID-10k's "non-eccentricity patch".
    h, w = img.shape[:2]
    size = max(2, min(h, w) // 16)
    out = img.copy()
    for _ in range(int(count)):
        y, x = int(rng.integers(0, max(1, h - size + 1))), int(rng.integers(0, max(1, w - size + 1)))
        dy, dx = (int(v) for v in rng.integers(-size, size + 1, size=2))
        sy, sx = int(np.clip(y + dy, 0, h - size)), int(np.clip(x + dx, 0, w - size))
        out[y : y + size, x : x + size] = img[sy : sy + size, sx : sx + size]
    return out


def list_distortions() -> list[Distortion]:
    return [DISTORTIONS.get(n) for n in DISTORTIONS.names()]


def select_levels(levels: int) -> list[int]:
    """Levels to use when fewer than 5 are asked for: evenly spread, always keeping 1 and 5."""
    if not 1 <= levels <= NUM_LEVELS:
        raise UsageError(f"--levels must be 1..{NUM_LEVELS}, got {levels}")
    if levels == 1:
        return [3]
    return sorted({int(round(v)) for v in np.linspace(1, NUM_LEVELS, levels)})

"""Integer sample arrays -> float32 ``(3, H, W)`` tensors in ``[0, 1]`` with one copy."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from qualitas.errors import MediaError

if TYPE_CHECKING:  # annotations only: torch is imported in the functions that use it
    import torch


def planes_to_float(src: torch.Tensor, max_value: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """Copy an integer ``(C, H, W)`` view (C = 1 or 3, any strides) into float32 ``(3, H, W)``.

    ``C = 1`` is replicated to three channels through ``expand`` (no intermediate copy).
    The result is divided by ``max_value`` in place, so the only full-size pass besides the
    copy is the division. ``out`` lets batch readers write straight into a batch slice.
    """
    import torch

    c, h, w = src.shape
    if c == 1:
        src = src.expand(3, h, w)
    if out is None:
        out = torch.empty((3, h, w), dtype=torch.float32)
    out.copy_(src)
    out.div_(max_value)
    return out


def hwc_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """View an ``(H, W)`` or ``(H, W, C)`` numpy array as an integer ``(C, H, W)`` tensor (no copy)."""
    import torch

    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    with warnings.catch_warnings():
        # Pillow hands out read-only arrays; the tensor is only ever read (copied into floats).
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        t = torch.from_numpy(arr)
    if t.ndim == 2:
        return t.unsqueeze(0)
    return t.permute(2, 0, 1)


def apply_orientation(t: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation (1-8) to a ``(C, H, W)`` tensor, as ``ImageOps.exif_transpose`` does."""
    import torch

    if orientation == 2:  # mirrored horizontally
        return t.flip(-1)
    if orientation == 3:  # rotated 180
        return t.flip(-2, -1)
    if orientation == 4:  # mirrored vertically
        return t.flip(-2)
    if orientation == 5:  # transpose (mirror about the main diagonal)
        return t.transpose(-2, -1)
    if orientation == 6:  # stored rotated 90 anticlockwise: display rotates 90 clockwise
        return torch.rot90(t, k=-1, dims=(-2, -1))
    if orientation == 7:  # transverse (mirror about the anti-diagonal)
        return t.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:  # display rotates 90 anticlockwise
        return torch.rot90(t, k=1, dims=(-2, -1))
    return t


# --- YUV -> RGB ---------------------------------------------------------------------

CHROMA_BLOCK_ROWS = 64
"""``yuv_to_rgb`` converts this many chroma rows (and the luma rows they cover) at a time."""

# (Kr, Kb) luma coefficients of each YUV matrix.
MATRICES: dict[str, tuple[float, float]] = {
    "bt709": (0.2126, 0.0722),
    "bt601": (0.299, 0.114),
    "bt2020": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
}

# AVColorSpace codes (libavutil/pixfmt.h) -> matrix name.
_AVCOL_SPC_NAMES = {
    0: "rgb",
    1: "bt709",
    4: "fcc",
    5: "bt601",  # BT470BG (625-line BT.601)
    6: "bt601",  # SMPTE170M (525-line BT.601)
    7: "smpte240m",
    9: "bt2020",  # BT2020_NCL
    10: "bt2020",  # BT2020_CL: approximated with the NCL matrix
}
_AVCOL_RANGE_JPEG = 2


def default_matrix(height: int) -> str:
    """Matrix for untagged YUV: BT.709 for HD (>= 720 lines), BT.601 below (as players do)."""
    return "bt709" if height >= 720 else "bt601"


def frame_matrix(colorspace_code: int, height: int) -> str:
    """The YUV->RGB matrix for a frame: its own tag when set, else ``default_matrix``."""
    return _AVCOL_SPC_NAMES.get(int(colorspace_code), default_matrix(height))


def yuv_to_rgb(
    y: torch.Tensor | np.ndarray,
    u: torch.Tensor | np.ndarray,
    v: torch.Tensor | np.ndarray,
    *,
    bit_depth: int,
    matrix: str = "bt709",
    full_range: bool = False,
    out: torch.Tensor | None = None,
    scratch: dict | None = None,
) -> torch.Tensor:
    """Planar YUV integer samples -> float32 RGB ``(3, H, W)`` in ``[0, 1]``.

    ``y``: ``(H, W)``; ``u``/``v``: ``(ceil(H/dy), ceil(W/dx))`` with ``dx, dy`` in {1, 2}
    (4:4:4, 4:2:2, 4:2:0); any integer dtype and strides (CPU tensors or numpy arrays).
    Limited range: ``Y' = (Y - 16*2^(n-8)) / (219*2^(n-8))``, ``C = (C - 128*2^(n-8)) /
    (224*2^(n-8))``; full range divides by ``2^n - 1`` around ``2^(n-1)``. Chroma is
    upsampled by replication (each chroma sample covers its ``dy x dx`` block; the usual
    fast path of decoders and of ffmpeg's own YUV->RGB), so the result does not depend on
    chroma siting. Computed in float32 and clamped to ``[0, 1]``; no rounding to integers.

    The arithmetic runs in numpy on one thread on purpose: it is a handful of cheap
    passes, and torch's intra-op threads turned each of them into a synchronisation
    point that cost far more than the work when the cores were busy (decoder threads,
    other jobs): 115 ms instead of 12 ms per 1080p frame on a loaded 2-core machine.

    ``scratch`` (any dict, kept by the caller between frames) holds the chroma-size work
    arrays for reuse: fresh ones cost ~3000 page faults per 1080p frame.
    """
    import torch

    y, u, v = (np.asarray(a) for a in (y, u, v))
    h, w = y.shape
    ch, cw = u.shape
    dy, dx = -(-h // ch), -(-w // cw)
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    top = float(2**bit_depth - 1)
    if full_range:
        y_off, y_scale = 0.0, 1.0 / top
        c_off, c_scale = float(2 ** (bit_depth - 1)), 1.0 / top
    else:
        unit = float(2 ** (bit_depth - 8))
        y_off, y_scale = 16.0 * unit, 1.0 / (219.0 * unit)
        c_off, c_scale = 128.0 * unit, 1.0 / (224.0 * unit)
    f32 = np.float32
    if out is None:
        out = torch.empty((3, h, w), dtype=torch.float32)
    if not out.is_contiguous():  # the numpy views below must alias ``out``
        out.copy_(
            yuv_to_rgb(y, u, v, bit_depth=bit_depth, matrix=matrix, full_range=full_range, scratch=scratch)
        )
        return out
    res = out.numpy()
    work = {} if scratch is None else scratch
    block = max(1, min(ch, CHROMA_BLOCK_ROWS))

    def buf(name: str, cols: int, rows: int) -> np.ndarray:
        arr = work.get(name)
        if arr is None or arr.shape != (block, cols):
            arr = work[name] = np.empty((block, cols), dtype=f32)
        return arr[:rows]

    # Chroma terms of R, G, B at chroma resolution (cheap), with the luma offset folded
    # in, so each output channel is one full-size pass: out = y * y_scale + term.
    shift = f32(-y_off * y_scale)
    k_r = f32(2.0 * (1.0 - kr) * c_scale)
    k_gb, k_gr = f32(-2.0 * kb * (1.0 - kb) / kg * c_scale), f32(-2.0 * kr * (1.0 - kr) / kg * c_scale)
    k_b = f32(2.0 * (1.0 - kb) * c_scale)
    # Blocks of chroma rows (and the luma rows they cover): work arrays stay small and in
    # the cache (4K: a few MB of scratch instead of ~60 MB).
    for c0 in range(0, ch, block):
        c1 = min(ch, c0 + block)
        r0, r1 = c0 * dy, min(h, c1 * dy)
        nc, nr = c1 - c0, r1 - r0
        cb = np.subtract(u[c0:c1], f32(c_off), out=buf("cb", cw, nc), dtype=f32)
        cr = np.subtract(v[c0:c1], f32(c_off), out=buf("cr", cw, nc), dtype=f32)
        r_term = np.multiply(cr, k_r, out=buf("r", cw, nc))
        r_term += shift
        g_term = np.multiply(cb, k_gb, out=buf("g", cw, nc))
        g_term += np.multiply(cr, k_gr, out=buf("tmp", cw, nc))
        g_term += shift
        b_term = np.multiply(cb, k_b, out=buf("b", cw, nc))
        b_term += shift
        rgb = res[:, r0:r1]
        # Scaled luma goes into the R plane first (written anyway: no extra buffer); G and
        # B read it, R is overwritten in place last.
        luma = rgb[0]
        np.multiply(y[r0:r1], f32(y_scale), out=luma, dtype=f32)
        for c, term in ((1, g_term), (2, b_term), (0, r_term)):
            if dx == 2 and w == 2 * cw:
                # Each float32 twice in a row = its 32 bits times 0x100000001 as one uint64:
                # one vectorised pass into a reused array (np.repeat allocates every time).
                wide = buf("wide", w, nc)
                np.multiply(
                    term.view(np.uint32), np.uint64(0x100000001), out=wide.view(np.uint64), casting="unsafe"
                )
                term = wide
            elif dx > 1:
                term = np.repeat(term, dx, axis=1)[:, :w]
            if dy > 1 and nr == nc * dy:  # replicate vertically by broadcasting over row pairs
                np.add(luma.reshape(nc, dy, w), term[:, None, :], out=rgb[c].reshape(nc, dy, w))
            else:
                if dy > 1:
                    term = np.repeat(term, dy, axis=0)[:nr]
                np.add(luma, term, out=rgb[c])
        np.clip(rgb, 0.0, 1.0, out=rgb)
    return out


def yuv_luma(
    y: torch.Tensor | np.ndarray, *, bit_depth: int, full_range: bool = False, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The Y plane ``(H, W)`` (any integer dtype and strides) -> normalised luma Y' float32 ``(H, W)`` in ``[0, 1]``.

    The same scaling as :func:`yuv_to_rgb` uses for the luma term (limited range
    ``(Y - 16*2^(n-8)) / (219*2^(n-8))``, full range ``Y / (2^n - 1)``), clamped to
    ``[0, 1]``: for a pixel with neutral chroma it equals each of the R, G, B values that
    ``yuv_to_rgb`` returns, bit for bit. One thread of numpy, like ``yuv_to_rgb``.
    """
    import torch

    y = np.asarray(y)
    top = float(2**bit_depth - 1)
    if full_range:
        y_off, y_scale = 0.0, 1.0 / top
    else:
        unit = float(2 ** (bit_depth - 8))
        y_off, y_scale = 16.0 * unit, 1.0 / (219.0 * unit)
    if out is None:
        out = torch.empty(y.shape, dtype=torch.float32)
    if not out.is_contiguous():
        out.copy_(yuv_luma(y, bit_depth=bit_depth, full_range=full_range))
        return out
    res = out.numpy()
    np.multiply(y, np.float32(y_scale), out=res, dtype=np.float32)
    res += np.float32(-y_off * y_scale)  # the same float32 steps as yuv_to_rgb's luma term
    np.clip(res, 0.0, 1.0, out=res)
    return out


def rotate_cw(t: torch.Tensor, degrees: int) -> torch.Tensor:
    """Rotate ``(..., H, W)`` clockwise by 0/90/180/270 degrees."""
    import torch

    if degrees == 90:
        return torch.rot90(t, k=-1, dims=(-2, -1))
    if degrees == 180:
        return t.flip(-2, -1)
    if degrees == 270:
        return torch.rot90(t, k=1, dims=(-2, -1))
    return t


# --- decoded video frames (PyAV) -> tensors ------------------------------------------

# Planar YUV formats converted by ``yuv_to_rgb`` (little-endian, native on the platforms
# we run on); anything else (RGB, gray, palette, semi-planar, big-endian ...) goes
# through swscale.
_PLANAR_YUV = {
    f"yuv{sub}p{depth}": (sub, bits)
    for sub in ("420", "422", "444")
    for depth, bits in (("", 8), ("10le", 10), ("12le", 12))
}
_PLANAR_YUV.update({f"yuvj{sub}p": (sub, 8) for sub in ("420", "422", "444")})
_PLANAR_YUV.update({f"yuva{sub}p": (sub, 8) for sub in ("420", "422", "444")})  # alpha plane ignored


def has_luma_plane(pix_fmt: str) -> bool:
    """Whether frames of ``pix_fmt`` are planar YUV, whose Y plane gives luma without RGB."""
    return pix_fmt in _PLANAR_YUV


def pix_fmt_bits(pix_fmt: str) -> int:
    """Bits per sample of a pixel format (``yuv420p10le`` -> 10)."""
    import av

    return int(av.VideoFormat(pix_fmt).components[0].bits)


def plane_tensor(plane, dtype: np.dtype) -> torch.Tensor:
    """Zero-copy ``(rows, width)`` integer view of a PyAV plane (skipping row padding)."""
    import torch

    arr = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
    return torch.from_numpy(arr[:, : plane.width])


class FrameConverter:
    """Converts PyAV frames to float32 RGB ``(3, H, W)`` tensors in ``[0, 1]``.

    Planar YUV (4:2:0/4:2:2/4:4:4, 8/10/12 bit) goes through ``yuv_to_rgb`` straight from
    the decoder's planes (no intermediate 8-bit RGB, so 10-bit keeps its precision). The
    matrix is the frame's colour-space tag, else BT.709 for >= 720 lines and BT.601
    below; the range is full when the frame says so (or for ``yuvj*``), else limited.
    Other formats are converted by swscale to planar RGB. ``rotation`` (clockwise
    degrees) is applied afterwards.
    """

    def __init__(self, rotation: int = 0) -> None:
        self.rotation = rotation
        self._reformatter = None  # swscale context, created on first use and reused
        self._scratch: dict = {}  # yuv_to_rgb's work arrays, reused from frame to frame

    def settings(self, frame) -> tuple[str, bool, int]:
        """``(matrix, full_range, bit_depth)`` for this frame (matrix ``"rgb"`` for RGB)."""
        fmt = frame.format
        bits = int(fmt.components[0].bits)
        if fmt.is_rgb:
            return "rgb", True, bits
        full = (
            frame.color_range == _AVCOL_RANGE_JPEG or fmt.name.startswith("yuvj") or len(fmt.components) <= 2
        )
        return frame_matrix(frame.colorspace, frame.height), full, bits

    def out_shape(self, frame) -> tuple[int, int, int]:
        h, w = frame.height, frame.width
        return (3, w, h) if self.rotation in (90, 270) else (3, h, w)

    def __call__(self, frame, out: torch.Tensor | None = None) -> torch.Tensor:
        """Convert one ``av.VideoFrame``; writes into ``out`` ``(3, H, W)`` when given."""
        import torch

        if out is None:
            out = torch.empty(self.out_shape(frame), dtype=torch.float32)
        plain = self.rotation == 0 and out.is_contiguous()  # numpy views below must alias it
        target = out if plain else torch.empty((3, frame.height, frame.width), dtype=torch.float32)
        name = frame.format.name
        if name in _PLANAR_YUV:
            matrix, full, bits = self.settings(frame)
            dtype = np.dtype("<u2") if bits > 8 else np.dtype(np.uint8)
            y, u, v = (plane_tensor(frame.planes[i], dtype) for i in range(3))
            yuv_to_rgb(
                y, u, v, bit_depth=bits, matrix=matrix, full_range=full, out=target, scratch=self._scratch
            )
        else:
            self._swscale(frame, target)
        if not plain:
            out.copy_(rotate_cw(target, self.rotation))
        return out

    def has_luma(self, frame) -> bool:
        """Whether :meth:`luma` can read this frame's Y plane (planar YUV formats)."""
        return frame.format.name in _PLANAR_YUV

    def luma_shape(self, frame) -> tuple[int, int, int]:
        return (1, *self.out_shape(frame)[1:])

    def luma(self, frame, out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised luma Y' ``(1, H, W)`` of one planar-YUV ``av.VideoFrame`` (:func:`yuv_luma`),
        rotation applied; writes into ``out`` when given. Other formats: ``MediaError``."""
        import torch

        name = frame.format.name
        if name not in _PLANAR_YUV:
            raise MediaError(f"frames in {name} have no Y plane to read luma from")
        if out is None:
            out = torch.empty(self.luma_shape(frame), dtype=torch.float32)
        plain = self.rotation == 0 and out.is_contiguous()
        target = out if plain else torch.empty((1, frame.height, frame.width), dtype=torch.float32)
        _, full, bits = self.settings(frame)
        dtype = np.dtype("<u2") if bits > 8 else np.dtype(np.uint8)
        yuv_luma(plane_tensor(frame.planes[0], dtype), bit_depth=bits, full_range=full, out=target[0])
        if not plain:
            out.copy_(rotate_cw(target, self.rotation))
        return out

    def _swscale(self, frame, out: torch.Tensor) -> None:
        from av.video.reformatter import VideoReformatter

        if self._reformatter is None:
            self._reformatter = VideoReformatter()
        wide = int(frame.format.components[0].bits) > 8
        rgb = self._reformatter.reformat(frame, format="gbrp16le" if wide else "gbrp")
        dtype = np.dtype("<u2") if wide else np.dtype(np.uint8)
        res = out.numpy()  # ``out`` is contiguous here (see __call__)
        top = np.float32(65535.0 if wide else 255.0)
        for channel, plane_index in ((0, 2), (1, 0), (2, 1)):  # gbrp planes are G, B, R
            np.divide(plane_tensor(rgb.planes[plane_index], dtype).numpy(), top, out=res[channel])

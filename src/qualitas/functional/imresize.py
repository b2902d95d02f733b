"""MATLAB-compatible ``imresize`` (bicubic or bilinear, with antialiasing when shrinking).

NIQE, BRISQUE and several other reference implementations build their second scale with
MATLAB's ``imresize(im, 0.5)``, which differs from ``torch.nn.functional.interpolate``:
when shrinking, the cubic kernel is stretched by ``1/scale`` (antialiasing, 8 taps at
0.5), the edges are handled by mirroring (``[1..n, n..1]``), and the output size is
``ceil(scale * n)``. This module reproduces MATLAB's ``contributions`` step exactly and
applies the resulting taps with a gather, height first then width (MATLAB's order when
both scales are equal), so there is no rounding between the two passes on float input.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

KERNELS = ("cubic", "linear")


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic with a = -0.5, as MATLAB's ``cubic``."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _triangle(x: np.ndarray) -> np.ndarray:
    return (x + 1.0) * ((x >= -1) & (x < 0)) + (1.0 - x) * ((x >= 0) & (x <= 1))


_KERNEL_FN = {"cubic": (_cubic, 4.0), "linear": (_triangle, 2.0)}


@lru_cache(maxsize=64)
def resize_contributions(
    in_length: int, out_length: int, scale: float, kernel: str = "cubic", antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Taps of one resized axis, as MATLAB ``imresize>contributions``.

    Returns ``(weights, indices)``, both (out_length, P) float64 / int64, with 0-based input
    indices already mirrored into ``[0, in_length)``; output sample ``i`` is
    ``sum_p weights[i, p] * x[indices[i, p]]``.
    """
    if kernel not in _KERNEL_FN:
        raise ValueError(f"unknown imresize kernel {kernel!r}; choose from {KERNELS}")
    fn, width = _KERNEL_FN[kernel]
    if scale < 1 and antialiasing:
        # Stretch the kernel so it also low-passes (MATLAB: h = @(x) scale * kernel(scale * x)).
        def h(v: np.ndarray) -> np.ndarray:
            return scale * fn(scale * v)

        width = width / scale
    else:
        h = fn
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate of each output sample
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Mirror out-of-range indices: aux = [1:n, n:-1:1], indexed modulo 2n.
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], idx[:, keep]


def _resize_rows(x: torch.Tensor, out_length: int, scale: float, kernel: str, antialiasing: bool):
    """Resize dim -2 of ``x`` (..., H, W): one row gather and multiply-add per tap."""
    weights, indices = resize_contributions(x.shape[-2], out_length, scale, kernel, antialiasing)
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    idx = torch.as_tensor(indices, device=x.device)
    # Whole rows are copied per tap (contiguous), which is several times faster than one
    # gather of all (out, P) taps at once.
    out = x.index_select(-2, idx[:, 0]) * w[:, 0, None]
    for p in range(1, idx.shape[1]):
        out.add_(x.index_select(-2, idx[:, p]) * w[:, p, None])
    return out


def _resize_axis(x: torch.Tensor, dim: int, out_length: int, scale: float, kernel: str, antialiasing: bool):
    if dim == -2:
        return _resize_rows(x, out_length, scale, kernel, antialiasing)
    # Columns: transpose so that they become rows (one copy), resize, transpose back.
    xt = x.transpose(-1, -2).contiguous()
    return _resize_rows(xt, out_length, scale, kernel, antialiasing).transpose(-1, -2).contiguous()


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    kernel: str = "cubic",
    antialiasing: bool = True,
) -> torch.Tensor:
    """MATLAB ``imresize`` of the last two dims of ``x`` (..., H, W).

    Give either ``scale`` (output ``ceil(scale * H), ceil(scale * W)``, as MATLAB) or
    ``size=(out_h, out_w)`` (per-axis scale ``out / in``). Float input gives float output
    with no rounding (MATLAB rounds only ``uint8`` output). Compute in float64 to
    reproduce MATLAB's double-precision results to ~1e-12.
    """
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of scale or size")
    if x.dim() < 2:
        raise ValueError(f"imresize expects (..., H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"imresize scale must be > 0, got {scale}")
        out_h, out_w = math.ceil(scale * h), math.ceil(scale * w)
        sh = sw = float(scale)
    else:
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"imresize size must be positive, got {size}")
        sh, sw = out_h / h, out_w / w
    if not x.is_floating_point():
        x = x.to(torch.float64)
    # MATLAB resizes the axis with the smaller scale first (height first on a tie).
    order = [(-2, out_h, sh), (-1, out_w, sw)]
    if sw < sh:
        order.reverse()
    for dim, n, s in order:
        if n != x.shape[dim] or s != 1.0:
            x = _resize_axis(x, dim, n, s, kernel, antialiasing)
    return x

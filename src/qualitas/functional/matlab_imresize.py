"""MATLAB ``imresize(x, [rows cols], 'bilinear')`` (antialiased when shrinking), batched.

MATLAB resamples each axis with a triangle kernel centred at ``u = x/s + (1 - 1/s)/2``
(1-based output index ``x``, scale ``s = out/in``); when shrinking the kernel is widened
by ``1/s`` (antialiasing) and border samples are mirrored. Each axis is therefore a fixed
linear map, built once per (in, out) size as a dense ``(out, in)`` matrix, and the resize
is two matrix products: ``Wr @ x @ Wc^T``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch


@functools.lru_cache(maxsize=64)
def _bilinear_weights(n_in: int, n_out: int, antialias: bool) -> np.ndarray:
    """(n_out, n_in) float64 resampling matrix of MATLAB's bilinear imresize along one axis."""
    scale = n_out / n_in
    shrink = antialias and scale < 1.0
    width = 2.0 / scale if shrink else 2.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    if shrink:
        w = scale * np.clip(1.0 - np.abs(scale * dist), 0.0, None)
    else:
        w = np.clip(1.0 - np.abs(dist), 0.0, None)
    w /= w.sum(axis=1, keepdims=True)
    # Mirror out-of-range (1-based) indices: [1..n, n..1] repeated.
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(n_out), taps), cols.ravel()), w.ravel())
    return mat


def imresize_bilinear(x: torch.Tensor, size: tuple[int, int], *, antialias: bool = True) -> torch.Tensor:
    """Resize (B,C,H,W) ``x`` to ``size=(rows, cols)`` as MATLAB ``imresize(..., 'bilinear')``."""
    h, w = x.shape[-2:]
    rows, cols = size
    if (rows, cols) == (h, w):
        return x
    wr = torch.from_numpy(_bilinear_weights(h, rows, antialias)).to(dtype=x.dtype, device=x.device)
    wc = torch.from_numpy(_bilinear_weights(w, cols, antialias)).to(dtype=x.dtype, device=x.device)
    return wr @ x @ wc.T

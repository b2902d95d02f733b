"""Fused numba kernels for full-reference metrics on decoded planar YUV frames.

Used by :mod:`qualitas.metrics.fr_yuv` (the scoring engine's fast path for ``psnr``,
``psnr_y``, ``ssim``, ``ssim_nodownsample`` and ``ms_ssim`` of YUV video). Each kernel
reproduces, operation by operation in float32, what the reference path computes with
numpy/torch (``qualitas.io._convert.yuv_to_rgb`` / ``yuv_luma``, ``metrics.psnr.mse``,
``functional.filters.box_downsample``, ``metrics.ssim.ssim_means``), so the per-pixel values
are the same floats; only sums are taken in another order (and in float64), which moves
results at float32 rounding level (docs/metrics.md, "Fast path for YUV video").

Why this file is long: one fused kernel per metric and plane layout (psnr, psnr_y, ssim sums, MS-SSIM
scales, downsampling), each with the reference operation order spelled out; split, they would
share nothing but imports.

Why hand-written: the reference path runs each step as a separate full-size pass (RGB
conversion, squared differences, gray, downsampling, five moment maps); fused into one
loop per frame they cost a few milliseconds at 1080p instead of tens. numba compiles them
once per install (``cache=True`` writes the machine code next to this file, or to
``NUMBA_CACHE_DIR``) and releases the GIL, so decoding threads and the metric thread run
at once. Planes are 2-D arrays whose rows may be padded: kernels take the logical width.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Sums may be reordered (vectorised reductions); no other fast-math licence, so every
# per-pixel value is the IEEE float32 result of the same operations as the reference path.
_SUMS = {"reassoc"}
# The SSIM kernels may also fuse multiply-adds (float32 rounding level, as the tiled eager
# kernel's BLAS/oneDNN filters do in their own order).
_FILTERS = {"reassoc", "contract", "nsz"}


def luma_params(bit_depth: int, full_range: bool) -> np.ndarray:
    """float32 ``[y_scale, y_shift]``: ``Y' = f32(Y) * y_scale + y_shift`` (then clipped to [0, 1]),
    the luma term of ``yuv_to_rgb`` / ``yuv_luma``."""
    top = float(2**bit_depth - 1)
    if full_range:
        y_off, y_scale = 0.0, 1.0 / top
    else:
        unit = float(2 ** (bit_depth - 8))
        y_off, y_scale = 16.0 * unit, 1.0 / (219.0 * unit)
    return np.array([y_scale, -y_off * y_scale], dtype=np.float32)


def rgb_params(bit_depth: int, full_range: bool, kr: float, kb: float) -> np.ndarray:
    """float32 ``[y_scale, shift, c_off, k_r, k_gb, k_gr, k_b]`` of ``yuv_to_rgb`` for one stream."""
    top = float(2**bit_depth - 1)
    if full_range:
        c_off, c_scale = float(2 ** (bit_depth - 1)), 1.0 / top
    else:
        unit = float(2 ** (bit_depth - 8))
        c_off, c_scale = 128.0 * unit, 1.0 / (224.0 * unit)
    y_scale, shift = luma_params(bit_depth, full_range)
    kg = 1.0 - kr - kb
    return np.array(
        [
            y_scale,
            shift,
            c_off,
            2.0 * (1.0 - kr) * c_scale,
            -2.0 * kb * (1.0 - kb) / kg * c_scale,
            -2.0 * kr * (1.0 - kr) / kg * c_scale,
            2.0 * (1.0 - kb) * c_scale,
        ],
        dtype=np.float32,
    )


def gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """float32 (size,) normalised gaussian: :func:`qualitas.functional.filters.gaussian_kernel1d`
    computed with numpy (same float64 steps, then float32; tested equal), so that the fast
    path does not import torch."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).astype(np.float32)


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _clip01(v):
    # min/max (not branches) so that loops around it vectorise; same value as np.clip.
    return min(max(v, np.float32(0.0)), np.float32(1.0))


@njit(nogil=True, cache=True, error_model="numpy")
def _chroma_terms(u, v, ci, cw, dx, w, p, tmp, r_out, g_out, b_out):
    """R, G, B chroma terms (shift folded in) of chroma row ``ci``, replicated to ``w`` columns.

    ``tmp`` (3, >= cw) float32 scratch. The same float32 steps as ``yuv_to_rgb``."""
    c_off, k_r, k_gb, k_gr, k_b, shift = p[2], p[3], p[4], p[5], p[6], p[1]
    for cj in range(cw):
        cb = np.float32(u[ci, cj]) - c_off
        cr = np.float32(v[ci, cj]) - c_off
        tmp[0, cj] = cr * k_r + shift  # (cr * k_r) rounded, then + shift: no contraction here
        g = cb * k_gb
        g = g + cr * k_gr
        tmp[1, cj] = g + shift
        tmp[2, cj] = cb * k_b + shift
    if dx == 1:
        for j in range(w):
            r_out[j] = tmp[0, j]
            g_out[j] = tmp[1, j]
            b_out[j] = tmp[2, j]
        return
    whole = min(cw, w // 2)
    for cj in range(whole):
        r_out[2 * cj] = tmp[0, cj]
        r_out[2 * cj + 1] = tmp[0, cj]
        g_out[2 * cj] = tmp[1, cj]
        g_out[2 * cj + 1] = tmp[1, cj]
        b_out[2 * cj] = tmp[2, cj]
        b_out[2 * cj + 1] = tmp[2, cj]
    if 2 * whole < w:  # odd width: the last chroma sample covers one column
        r_out[w - 1] = tmp[0, whole]
        g_out[w - 1] = tmp[1, whole]
        b_out[w - 1] = tmp[2, whole]


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_SUMS)
def _row_sse_rgb(ya, yb, i, w, ys_a, ys_b, ra, ga, ba, rb, gb, bb):
    """Row ``i``'s RGB squared error (see :func:`yuv_sq_errors`)."""
    acc = 0.0
    z = np.float32(0.0)
    o = np.float32(1.0)
    for j in range(w):
        la = np.float32(ya[i, j]) * ys_a
        lb = np.float32(yb[i, j]) * ys_b
        d0 = min(max(la + ra[j], z), o) - min(max(lb + rb[j], z), o)
        d1 = min(max(la + ga[j], z), o) - min(max(lb + gb[j], z), o)
        d2 = min(max(la + ba[j], z), o) - min(max(lb + bb[j], z), o)
        # The three float32 squares added in float32 (as the reference's float32 sums do),
        # each pixel's total accumulated in float64.
        acc += np.float64(d0 * d0 + d1 * d1 + d2 * d2)
    return acc


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_SUMS)
def _row_sse_rgb_y(ya, yb, i, w, ys_a, ys_b, sh_a, sh_b, ra, ga, ba, rb, gb, bb):
    """:func:`_row_sse_rgb` and :func:`_row_sse_y` of row ``i`` in one pass -> (RGB, Y)."""
    acc = 0.0
    acc_y = 0.0
    z = np.float32(0.0)
    o = np.float32(1.0)
    k219 = np.float32(219.0 / 255.0)
    off = np.float32(16.0 / 255.0)
    for j in range(w):
        la = np.float32(ya[i, j]) * ys_a
        lb = np.float32(yb[i, j]) * ys_b
        d0 = min(max(la + ra[j], z), o) - min(max(lb + rb[j], z), o)
        d1 = min(max(la + ga[j], z), o) - min(max(lb + gb[j], z), o)
        d2 = min(max(la + ba[j], z), o) - min(max(lb + bb[j], z), o)
        acc += np.float64(d0 * d0 + d1 * d1 + d2 * d2)
        d = (min(max(la + sh_a, z), o) * k219 + off) - (min(max(lb + sh_b, z), o) * k219 + off)
        acc_y += np.float64(d * d)
    return acc, acc_y


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_SUMS)
def _row_sse_y(ya, yb, i, w, ys_a, ys_b, sh_a, sh_b):
    """Row ``i``'s studio-range Y squared error (see :func:`yuv_sq_errors`)."""
    acc = 0.0
    z = np.float32(0.0)
    o = np.float32(1.0)
    k219 = np.float32(219.0 / 255.0)
    off = np.float32(16.0 / 255.0)
    for j in range(w):
        la = min(max(np.float32(ya[i, j]) * ys_a + sh_a, z), o)
        lb = min(max(np.float32(yb[i, j]) * ys_b + sh_b, z), o)
        d = (la * k219 + off) - (lb * k219 + off)
        acc += np.float64(d * d)
    return acc


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_SUMS)
def yuv_sq_errors(ya, ua, va, yb, ub, vb, w, pa, pb, dy, dx, want_rgb, want_y):
    """Sums of squared differences of two planar YUV frames -> (RGB SSE, studio-Y SSE) float64.

    ``ya``/``yb``: Y planes (H, >= w); ``ua, va``/``ub, vb``: chroma (ceil(H/dy), >= ceil(w/dx));
    ``pa``/``pb``: :func:`rgb_params` of each stream. RGB: each pixel as ``yuv_to_rgb`` converts
    it (chroma replicated, float32, clipped to [0, 1]), squared float32 difference summed over the
    three channels (``psnr``'s MSE numerator). Studio Y: ``16/255 + 219/255 * Y'`` of each
    clipped Y' (``psnr_y`` from the Y plane). Either sum is skipped (0) when not wanted.
    """
    h = ya.shape[0]
    cw_a = ua.shape[1]
    cw = min(cw_a, (w + dx - 1) // dx)
    ra = np.empty(w, np.float32)
    ga = np.empty(w, np.float32)
    ba = np.empty(w, np.float32)
    rb = np.empty(w, np.float32)
    gb = np.empty(w, np.float32)
    bb = np.empty(w, np.float32)
    tmp = np.empty((3, cw), np.float32)
    ys_a, ys_b = pa[0], pb[0]
    sh_a, sh_b = pa[1], pb[1]
    sse_rgb = 0.0
    sse_y = 0.0
    last_ci = -1
    for i in range(h):
        if want_rgb:
            ci = i // dy
            if ci != last_ci:
                _chroma_terms(ua, va, ci, cw, dx, w, pa, tmp, ra, ga, ba)
                _chroma_terms(ub, vb, ci, cw, dx, w, pb, tmp, rb, gb, bb)
                last_ci = ci
            if want_y:
                e_rgb, e_y = _row_sse_rgb_y(ya, yb, i, w, ys_a, ys_b, sh_a, sh_b, ra, ga, ba, rb, gb, bb)
                sse_rgb += e_rgb
                sse_y += e_y
            else:
                sse_rgb += _row_sse_rgb(ya, yb, i, w, ys_a, ys_b, ra, ga, ba, rb, gb, bb)
        elif want_y:
            sse_y += _row_sse_y(ya, yb, i, w, ys_a, ys_b, sh_a, sh_b)
    return sse_rgb, sse_y


def studio_y_params(bit_depth: int, full_range: bool) -> tuple[int, int, float]:
    """``(lo, hi, scale)``: the studio-range Y of ``psnr_y`` in exact arithmetic.

    ``16/255 + 219/255 * clip(Y', 0, 1)`` of two samples of the same format differ by
    ``(clip(Ya, lo, hi) - clip(Yb, lo, hi)) * scale``: limited range (code unit ``u = 2**(b-8)``)
    ``Y' = (Y - 16u) / 219u``, so ``lo, hi = 16u, 235u`` and ``scale = 1 / 255u``; full range
    ``Y' = Y / (2**b - 1)`` (never clipped), ``scale = 219 / (255 (2**b - 1))``."""
    top = 2**bit_depth - 1
    if full_range:
        return 0, top, 219.0 / (255.0 * top)
    unit = 2 ** (bit_depth - 8)
    return 16 * unit, 235 * unit, 1.0 / (255.0 * unit)


@njit(nogil=True, cache=True, error_model="numpy")
def y_sq_error_int(ya, yb, w, lo, hi):
    """Integer sum of squared differences of two Y planes (H, >= w) clipped to [lo, hi] -> int64
    (:func:`studio_y_params`; times ``scale**2`` it is ``psnr_y``'s SSE, exact)."""
    h = ya.shape[0]
    total = 0
    for i in range(h):
        acc = 0
        for j in range(w):
            d = min(max(np.int32(ya[i, j]), lo), hi) - min(max(np.int32(yb[i, j]), lo), hi)
            acc += d * d
        total += acc
    return total


@njit(nogil=True, cache=True, error_model="numpy")
def _mirror(i, n):
    """MATLAB 'symmetric' padding index (the edge sample repeated)."""
    if i < 0:
        return -i - 1
    if i >= n:
        return 2 * n - 1 - i
    return i


@njit(nogil=True, cache=True, error_model="numpy")
def gray255(y, w, p):
    """Y plane (H, >= w) -> float32 (H, w) gray on 0..255: ``255 * clip(f32(Y) * y_scale + y_shift, 0, 1)``
    (``yuv_luma`` then SSIM's ``prepare_luma``)."""
    h = y.shape[0]
    out = np.empty((h, w), np.float32)
    ys, sh = p[0], p[1]
    k = np.float32(255.0)
    for i in range(h):
        for j in range(w):
            out[i, j] = _clip01(np.float32(y[i, j]) * ys + sh) * k
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def _box_columns(rows, f):
    """The column pass of :func:`box_downsample_2d` on row-averaged ``rows`` (ho, W) -> (ho, ceil(W/f))."""
    ho, w = rows.shape
    before = (f - 1) // 2
    wo = (w + f - 1) // f
    ff = np.float32(f)
    out = np.empty((ho, wo), np.float32)
    # Output columns whose f inputs all lie inside the row (no mirroring): [lo, hi).
    lo = (before + f - 1) // f
    hi = max(lo, min(wo, (w + before - f) // f + 1))
    for oi in range(ho):
        r = rows[oi]
        o = out[oi]
        for oj in range(wo):
            if oj == lo and hi > lo:
                break
            s = r[_mirror(f * oj - before, w)] + r[_mirror(f * oj - before + 1, w)]
            for t in range(2, f):
                s = s + r[_mirror(f * oj - before + t, w)]
            o[oj] = s / ff
        if hi > lo:
            if f == 2:
                for oj in range(lo, hi):
                    o[oj] = (r[2 * oj] + r[2 * oj + 1]) / ff
            elif f == 4:
                for oj in range(lo, hi):
                    b = 4 * oj - 1
                    o[oj] = (((r[b] + r[b + 1]) + r[b + 2]) + r[b + 3]) / ff
            else:
                for oj in range(lo, hi):
                    b = f * oj - before
                    s = r[b] + r[b + 1]
                    for t in range(2, f):
                        s = s + r[b + t]
                    o[oj] = s / ff
            for oj in range(hi, wo):
                s = r[_mirror(f * oj - before, w)] + r[_mirror(f * oj - before + 1, w)]
                for t in range(2, f):
                    s = s + r[_mirror(f * oj - before + t, w)]
                o[oj] = s / ff
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def _box2(x):
    """:func:`box_downsample_2d` by 2 in one pass without the row-pass map: each output is
    ``((a + c) / 2 + (b + d) / 2) / 2`` of its 2x2 block (rows first, as the reference; an odd
    last row or column mirrored, i.e. repeated). 2.7x faster at 1080p, the same floats."""
    h, w = x.shape
    ho, wo = (h + 1) // 2, (w + 1) // 2
    out = np.empty((ho, wo), np.float32)
    two = np.float32(2.0)
    for oi in range(ho):
        r0 = x[2 * oi]
        r1 = x[min(2 * oi + 1, h - 1)]
        o = out[oi]
        for oj in range(w // 2):
            o[oj] = ((r0[2 * oj] + r1[2 * oj]) / two + (r0[2 * oj + 1] + r1[2 * oj + 1]) / two) / two
        if w % 2:
            a = (r0[w - 1] + r1[w - 1]) / two
            o[wo - 1] = (a + a) / two
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def box_downsample_2d(x, f):
    """``functional.filters.box_downsample`` of one float32 map (H, W) by ``f`` (>= 2): rows then
    columns, each output the float32 sum of its f samples in order, divided by f."""
    if f == 2:
        return _box2(x)
    h, w = x.shape
    before = (f - 1) // 2
    ho = (h + f - 1) // f
    ff = np.float32(f)
    rows = np.empty((ho, w), np.float32)
    for oi in range(ho):
        r0 = _mirror(f * oi - before, h)
        r1 = _mirror(f * oi - before + 1, h)
        for j in range(w):
            rows[oi, j] = x[r0, j] + x[r1, j]
        for t in range(2, f):
            rt = _mirror(f * oi - before + t, h)
            for j in range(w):
                rows[oi, j] = rows[oi, j] + x[rt, j]
        for j in range(w):
            rows[oi, j] = rows[oi, j] / ff
    return _box_columns(rows, f)


@njit(nogil=True, cache=True, error_model="numpy")
def _gray255_down4(y, w, p):
    """:func:`gray255_downsampled` by 4 (``ssim.m``'s factor at 1080p): each output row's four
    gray rows made and summed in one vectorised pass, ``((g0 + g1) + g2) + g3`` then ``/ 4`` as
    the reference's row pass, then the column pass; the same floats (tested), 0.47 -> 0.26 ms
    per 1080p frame."""
    h = y.shape[0]
    ho = (h + 3) // 4
    wo = (w + 3) // 4
    ys, sh = p[0], p[1]
    k255 = np.float32(255.0)
    ff = np.float32(4.0)
    z = np.float32(0.0)
    one = np.float32(1.0)
    rows = np.empty(w, np.float32)
    out = np.empty((ho, wo), np.float32)
    for oi in range(ho):
        # Output row oi averages input rows 4 oi - 1 .. 4 oi + 2 (mirrored at the edges).
        a0 = y[_mirror(4 * oi - 1, h)]
        a1 = y[_mirror(4 * oi, h)]
        a2 = y[_mirror(4 * oi + 1, h)]
        a3 = y[_mirror(4 * oi + 2, h)]
        for j in range(w):
            g0 = min(max(np.float32(a0[j]) * ys + sh, z), one) * k255
            g1 = min(max(np.float32(a1[j]) * ys + sh, z), one) * k255
            g2 = min(max(np.float32(a2[j]) * ys + sh, z), one) * k255
            g3 = min(max(np.float32(a3[j]) * ys + sh, z), one) * k255
            rows[j] = (((g0 + g1) + g2) + g3) / ff
        o = out[oi]
        hi = min(wo, (w - 3) // 4 + 1)  # columns oj >= 1 whose inputs 4 oj - 1 .. 4 oj + 2 are inside
        for oj in range(1, hi):
            b = 4 * oj - 1
            o[oj] = (((rows[b] + rows[b + 1]) + rows[b + 2]) + rows[b + 3]) / ff
        for oj in range(wo):
            if oj == 0 or oj >= hi:  # the first and the last columns: mirrored inputs
                b = 4 * oj - 1
                s = rows[_mirror(b, w)] + rows[_mirror(b + 1, w)]
                o[oj] = ((s + rows[_mirror(b + 2, w)]) + rows[_mirror(b + 3, w)]) / ff
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def gray255_downsampled(y, w, p, f):
    """:func:`gray255` then :func:`box_downsample_2d` by ``f``, without the full-size gray map
    when ``f >= 2`` (each gray sample is made once, as the row pass reads it)."""
    h = y.shape[0]
    if f < 2:
        return gray255(y, w, p)
    if f == 4:
        return _gray255_down4(y, w, p)
    before = (f - 1) // 2
    ho = (h + f - 1) // f
    ff = np.float32(f)
    ys, sh = p[0], p[1]
    k = np.float32(255.0)
    rows = np.empty((ho, w), np.float32)
    for oi in range(ho):
        r0 = _mirror(f * oi - before, h)
        r1 = _mirror(f * oi - before + 1, h)
        for j in range(w):
            g0 = _clip01(np.float32(y[r0, j]) * ys + sh) * k
            g1 = _clip01(np.float32(y[r1, j]) * ys + sh) * k
            rows[oi, j] = g0 + g1
        for t in range(2, f):
            rt = _mirror(f * oi - before + t, h)
            for j in range(w):
                rows[oi, j] = rows[oi, j] + _clip01(np.float32(y[rt, j]) * ys + sh) * k
        for j in range(w):
            rows[oi, j] = rows[oi, j] / ff
    return _box_columns(rows, f)


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FILTERS)
def _taps11(out, n, g, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, off):
    """``out[j] = sum_t g[t] * a_t[j + off * t]`` for j < n: the 11-tap window written out, so
    each output is one store (vertical pass: 11 rows, ``off`` 0; horizontal: one row, shifts)."""
    g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10 = (
        g[0],
        g[1],
        g[2],
        g[3],
        g[4],
        g[5],
        g[6],
        g[7],
        g[8],
        g[9],
        g[10],
    )
    for j in range(n):
        out[j] = (
            g0 * a0[j]
            + g1 * a1[j + off]
            + g2 * a2[j + 2 * off]
            + g3 * a3[j + 3 * off]
            + g4 * a4[j + 4 * off]
            + g5 * a5[j + 5 * off]
            + g6 * a6[j + 6 * off]
            + g7 * a7[j + 7 * off]
            + g8 * a8[j + 8 * off]
            + g9 * a9[j + 9 * off]
            + g10 * a10[j + 10 * off]
        )


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FILTERS)
def _vert11(out, w, g, m, r0, ring, k):
    """Vertical 11-tap pass of map ``m`` (H, W) rows r0..r0+10 (``ring``: rows are slots of a ring of ``k``)."""
    if ring:
        _taps11(
            out, w, g,
            m[r0 % k], m[(r0 + 1) % k], m[(r0 + 2) % k], m[(r0 + 3) % k], m[(r0 + 4) % k], m[(r0 + 5) % k],
            m[(r0 + 6) % k], m[(r0 + 7) % k], m[(r0 + 8) % k], m[(r0 + 9) % k], m[(r0 + 10) % k], 0,
        )  # fmt: skip
    else:
        _taps11(
            out, w, g,
            m[r0], m[r0 + 1], m[r0 + 2], m[r0 + 3], m[r0 + 4], m[r0 + 5],
            m[r0 + 6], m[r0 + 7], m[r0 + 8], m[r0 + 9], m[r0 + 10], 0,
        )  # fmt: skip


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FILTERS)
def _vert11_pair(oa, ob, w, g, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11):
    """Vertical 11-tap passes of two consecutive output rows from their 12 input rows: each
    shared row is loaded once for both (the pass is bound by loads, not multiply-adds)."""
    g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10 = (
        g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10],
    )  # fmt: skip
    for j in range(w):
        v1, v2, v3, v4, v5 = a1[j], a2[j], a3[j], a4[j], a5[j]
        v6, v7, v8, v9, v10 = a6[j], a7[j], a8[j], a9[j], a10[j]
        oa[j] = (
            g0 * a0[j] + g1 * v1 + g2 * v2 + g3 * v3 + g4 * v4 + g5 * v5
            + g6 * v6 + g7 * v7 + g8 * v8 + g9 * v9 + g10 * v10
        )  # fmt: skip
        ob[j] = (
            g0 * v1 + g1 * v2 + g2 * v3 + g3 * v4 + g4 * v5 + g5 * v6
            + g6 * v7 + g7 * v8 + g8 * v9 + g9 * v10 + g10 * a11[j]
        )  # fmt: skip


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FILTERS)
def _vert11_rows(oa, ob, w, g, m, r0, ring):
    """:func:`_vert11_pair` of map ``m``'s rows r0..r0+11 (``ring``: a ring of 12 row slots)."""
    if ring:
        k = 12
        _vert11_pair(
            oa, ob, w, g,
            m[r0 % k], m[(r0 + 1) % k], m[(r0 + 2) % k], m[(r0 + 3) % k], m[(r0 + 4) % k], m[(r0 + 5) % k],
            m[(r0 + 6) % k], m[(r0 + 7) % k], m[(r0 + 8) % k], m[(r0 + 9) % k], m[(r0 + 10) % k],
            m[(r0 + 11) % k],
        )  # fmt: skip
    else:
        _vert11_pair(
            oa, ob, w, g,
            m[r0], m[r0 + 1], m[r0 + 2], m[r0 + 3], m[r0 + 4], m[r0 + 5],
            m[r0 + 6], m[r0 + 7], m[r0 + 8], m[r0 + 9], m[r0 + 10], m[r0 + 11],
        )  # fmt: skip


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FILTERS)
def _horiz11(out, n, g, v):
    _taps11(out, n, g, v, v, v, v, v, v, v, v, v, v, v, 1)


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_SUMS)
def _products(xr, yr, w, xy, sq):
    """One row's moments ``x * y`` and ``x * x + y * y``, each product rounded as the reference's
    separate float32 maps are (no fused multiply-add: identical inputs give identical moments)."""
    for j in range(w):
        a = xr[j]
        b = yr[j]
        xy[j] = a * b
        sq[j] = a * a + b * b


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_SUMS)
def _row_ssim(hx, hy, hxy, hsq, ow, c1, c2, want_s):
    """Sums of one output row's SSIM and contrast-structure values (float64), from its filtered
    moments; every operation rounded as the reference's elementwise float32 ops (no fused
    multiply-add), so identical inputs give exactly 1. ``want_s=False``: the SSIM sum is not
    made (0; MS-SSIM's scales but the last need only contrast-structure)."""
    two = np.float32(2.0)
    acc_s = 0.0
    acc_c = 0.0
    if not want_s:
        for j in range(ow):
            mx = hx[j]
            my = hy[j]
            acc_c += np.float64((two * (hxy[j] - mx * my) + c2) / (hsq[j] - (mx * mx + my * my) + c2))
        return acc_s, acc_c
    for j in range(ow):
        mx = hx[j]
        my = hy[j]
        mxy = mx * my
        msq = mx * mx + my * my
        cs = (two * (hxy[j] - mxy) + c2) / (hsq[j] - msq + c2)
        lum = (two * mxy + c1) / (msq + c1)
        acc_s += np.float64(lum * cs)
        acc_c += np.float64(cs)
    return acc_s, acc_c


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FILTERS)
def _ssim_sums11(x, y, taps, c1, c2, want_s):
    """:func:`ssim_sums` for an 11-tap window: output rows in pairs (one :func:`_vert11_pair` per
    map for both; a last odd row alone), the products in a ring of 12 rows."""
    h, w = x.shape
    oh, ow = h - 10, w - 10
    ring_xy = np.empty((12, w), np.float32)
    ring_sq = np.empty((12, w), np.float32)
    v = np.empty((8, w), np.float32)
    hm = np.empty((4, ow), np.float32)
    sum_s = 0.0
    sum_c = 0.0
    for i in range(h):
        _products(x[i], y[i], w, ring_xy[i % 12], ring_sq[i % 12])
        r1 = i - 10  # the output row whose window ends at input row i
        if r1 >= 1 and r1 % 2 == 1:  # rows r1 - 1 and r1: input rows r1 - 1 .. i
            r0 = r1 - 1
            _vert11_rows(v[0], v[4], w, taps, x, r0, False)
            _vert11_rows(v[1], v[5], w, taps, y, r0, False)
            _vert11_rows(v[2], v[6], w, taps, ring_xy, r0, True)
            _vert11_rows(v[3], v[7], w, taps, ring_sq, r0, True)
            for half in range(2):
                for q in range(4):
                    _horiz11(hm[q], ow, taps, v[4 * half + q])
                acc_s, acc_c = _row_ssim(hm[0], hm[1], hm[2], hm[3], ow, c1, c2, want_s)
                sum_s += acc_s
                sum_c += acc_c
        elif r1 == oh - 1 and r1 % 2 == 0:  # an odd count of output rows: the last alone
            _vert11(v[0], w, taps, x, r1, False, 12)
            _vert11(v[1], w, taps, y, r1, False, 12)
            _vert11(v[2], w, taps, ring_xy, r1, True, 12)
            _vert11(v[3], w, taps, ring_sq, r1, True, 12)
            for q in range(4):
                _horiz11(hm[q], ow, taps, v[q])
            acc_s, acc_c = _row_ssim(hm[0], hm[1], hm[2], hm[3], ow, c1, c2, want_s)
            sum_s += acc_s
            sum_c += acc_c
    return sum_s, sum_c, oh * ow


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FILTERS)
def ssim_sums(x, y, taps, c1, c2, want_s=True):
    """Sums of the SSIM and contrast-structure maps of float32 gray maps x, y (H, W) -> (float64, float64, count).

    ``ssim_means``' definition: 'valid' correlation of mu_x, mu_y, E[xy], E[x^2 + y^2] with the
    separable window ``taps`` (k,), then ``cs = (2 (E[xy] - mu_x mu_y) + c2) / (E[x^2+y^2] - mu_x^2
    - mu_y^2 + c2)`` and ``ssim = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1) * cs``. One pass over
    the rows: the products of each input row are made once into a ring of k rows, the vertical
    pass of an output row reads the ring, the horizontal pass and the SSIM arithmetic follow
    (11 taps: two output rows per vertical pass, :func:`_ssim_sums11`). ``want_s=False``: the
    SSIM sum is 0 (not made).
    """
    k = taps.shape[0]
    if k == 11:
        return _ssim_sums11(x, y, taps, c1, c2, want_s)
    h, w = x.shape
    oh, ow = h - k + 1, w - k + 1
    ring_xy = np.empty((k, w), np.float32)
    ring_sq = np.empty((k, w), np.float32)
    vx = np.empty(w, np.float32)
    vy = np.empty(w, np.float32)
    vxy = np.empty(w, np.float32)
    vsq = np.empty(w, np.float32)
    hx = np.empty(ow, np.float32)
    hy = np.empty(ow, np.float32)
    hxy = np.empty(ow, np.float32)
    hsq = np.empty(ow, np.float32)
    sum_s = 0.0
    sum_c = 0.0
    for i in range(h):
        _products(x[i], y[i], w, ring_xy[i % k], ring_sq[i % k])
        if i < k - 1:
            continue
        r0 = i - k + 1  # first input row of this output row
        for j in range(w):
            vx[j] = np.float32(0.0)
            vy[j] = np.float32(0.0)
            vxy[j] = np.float32(0.0)
            vsq[j] = np.float32(0.0)
        for t in range(k):
            g = taps[t]
            s = (r0 + t) % k
            for j in range(w):
                vx[j] += g * x[r0 + t, j]
                vy[j] += g * y[r0 + t, j]
                vxy[j] += g * ring_xy[s, j]
                vsq[j] += g * ring_sq[s, j]
        for j in range(ow):
            hx[j] = np.float32(0.0)
            hy[j] = np.float32(0.0)
            hxy[j] = np.float32(0.0)
            hsq[j] = np.float32(0.0)
        for t in range(k):
            g = taps[t]
            for j in range(ow):
                hx[j] += g * vx[j + t]
                hy[j] += g * vy[j + t]
                hxy[j] += g * vxy[j + t]
                hsq[j] += g * vsq[j + t]
        acc_s, acc_c = _row_ssim(hx, hy, hxy, hsq, ow, c1, c2, want_s)
        sum_s += acc_s
        sum_c += acc_c
    return sum_s, sum_c, oh * ow

"""``yuv_to_rgb`` against the textbook BT.601/BT.709 formulas (float64, written in io_helpers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from io_helpers import SUBSAMPLING, random_planes, reference_rgb, upsample

from qualitas.io._convert import yuv_to_rgb


@pytest.mark.parametrize("sub", ["420", "422", "444"])
@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("matrix", ["bt709", "bt601"])
@pytest.mark.parametrize("full_range", [False, True])
def test_matches_reference(sub, bits, matrix, full_range):
    h, w = 14, 22
    y, u, v = random_planes(h, w, bits, sub, seed=bits)
    dx, dy = SUBSAMPLING[sub]
    ref = reference_rgb(y, upsample(u, dx, dy, h, w), upsample(v, dx, dy, h, w), bits, matrix, full_range)
    out = yuv_to_rgb(
        *(torch.from_numpy(a.astype(a.dtype.newbyteorder("="))) for a in (y, u, v)),
        bit_depth=bits,
        matrix=matrix,
        full_range=full_range,
    )
    assert out.shape == (3, h, w) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=2e-6)


@pytest.mark.parametrize("h, w", [(7, 9), (1, 1), (5, 8), (6, 3)])
def test_odd_sizes_420(h, w):
    y, u, v = random_planes(h, w, 8, "420", seed=3)
    assert u.shape == (-(-h // 2), -(-w // 2))
    ref = reference_rgb(y, upsample(u, 2, 2, h, w), upsample(v, 2, 2, h, w), 8, "bt601")
    out = yuv_to_rgb(
        torch.from_numpy(y), torch.from_numpy(u), torch.from_numpy(v), bit_depth=8, matrix="bt601"
    )
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=2e-6)


def test_known_colours_bt709_limited():
    # Black, white and the BT.709 limited-range code values of pure red (63, 102, 240).
    y = torch.tensor([[16, 235, 63]], dtype=torch.uint8)
    u = torch.tensor([[128, 128, 102]], dtype=torch.uint8)
    v = torch.tensor([[128, 128, 240]], dtype=torch.uint8)
    out = yuv_to_rgb(y, u, v, bit_depth=8, matrix="bt709")
    np.testing.assert_allclose(out[:, 0, 0].numpy(), [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out[:, 0, 1].numpy(), [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(out[:, 0, 2].numpy(), [1, 0, 0], atol=0.01)


def test_out_of_gamut_is_clamped_and_out_buffer_used():
    y = torch.full((4, 4), 250, dtype=torch.uint8)
    u = torch.full((2, 2), 16, dtype=torch.uint8)
    v = torch.full((2, 2), 240, dtype=torch.uint8)
    buf = torch.empty(3, 4, 4)
    out = yuv_to_rgb(y, u, v, bit_depth=8, matrix="bt709", out=buf)
    assert out.data_ptr() == buf.data_ptr()
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_non_contiguous_out_and_numpy_inputs():
    y, u, v = random_planes(8, 6, 8, "420", seed=2)
    expected = yuv_to_rgb(torch.from_numpy(y), torch.from_numpy(u), torch.from_numpy(v), bit_depth=8)
    strided = torch.zeros(3, 6, 8).transpose(1, 2)  # (3, 8, 6) view, not contiguous
    got = yuv_to_rgb(y, u, v, bit_depth=8, out=strided)
    assert got is strided and torch.equal(strided, expected)

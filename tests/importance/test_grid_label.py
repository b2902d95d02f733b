"""Importance mechanics: gradient definition, block sums, quantisation, selection, pasting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qualitas.errors import UsageError
from qualitas.importance.grid import (
    block_sum,
    blocks_to_pixels,
    dilate,
    grid_shape,
    normalise,
    parse_select,
    paste,
    quantise,
    select_random,
    select_topk,
)
from qualitas.importance.label import LabelSet, block_importance, label_frames, pixel_importance


class TinyObjective(torch.nn.Module):
    """A small smooth non-linear objective: sum of tanh of a fixed convolution."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.conv2d(x, self.w, padding=1)
        return torch.tanh(y).pow(2).sum(dim=(1, 2, 3))


def test_gradient_matches_finite_differences():
    obj = TinyObjective()
    g = torch.Generator().manual_seed(1)
    e = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64)
    u = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64)
    grad_only, _ = pixel_importance(obj, e, u, mode="grad")
    gxd, value = pixel_importance(obj, e, u, mode="grad_x_diff")
    assert value.item() == pytest.approx(obj(e).item())
    # Central differences per pixel and channel.
    eps = 1e-6
    fd = torch.zeros_like(e)
    for c in range(3):
        for i in range(6):
            for j in range(6):
                d = torch.zeros_like(e)
                d[0, c, i, j] = eps
                fd[0, c, i, j] = (obj(e + d) - obj(e - d)).item() / (2 * eps)
    torch.testing.assert_close(grad_only[0], fd[0].abs().sum(0), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(gxd[0], (fd[0] * (e - u)[0]).abs().sum(0), rtol=1e-6, atol=1e-8)


def test_block_importance_is_first_order_change_for_linear_objective():
    # For a linear objective with a non-negative weight and e >= u, the signed first-order
    # change is exact: reverting a block to the cheap frame lowers f by its importance.
    g = torch.Generator().manual_seed(2)
    w = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)

    def obj(x):
        return (w * x).sum(dim=(1, 2, 3))

    u = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    e = u + torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    imp, _ = block_importance(obj, e, u, scale=2, block=2)  # 4x4 enhanced pixels per block
    assert imp.shape == (1, 2, 2)
    for bi in range(2):
        for bj in range(2):
            r = e.clone()
            r[..., bi * 4 : bi * 4 + 4, bj * 4 : bj * 4 + 4] = u[
                ..., bi * 4 : bi * 4 + 4, bj * 4 : bj * 4 + 4
            ]
            assert (obj(e) - obj(r)).item() == pytest.approx(imp[0, bi, bj].item(), rel=1e-9)


def test_block_sum_with_partial_edge_blocks():
    x = torch.arange(5 * 7, dtype=torch.float32).reshape(5, 7)
    s = block_sum(x, 4)
    assert grid_shape(5, 7, 4) == (2, 2) and s.shape == (2, 2)
    assert s[0, 0] == x[:4, :4].sum() and s[1, 1] == x[4:, 4:].sum() and s[0, 1] == x[:4, 4:].sum()
    assert s.sum() == x.sum()
    b = block_sum(torch.ones(2, 3, 32, 48), 16)
    assert b.shape == (2, 3, 2, 3) and torch.all(b == 256)


def test_normalise_and_quantise():
    grid = torch.tensor([[[0.0, 1.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    n = normalise(grid, "max")
    torch.testing.assert_close(n[0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.all(n[1] == 0)
    assert normalise(grid, "sum")[0].sum().item() == pytest.approx(1.0)
    q = quantise(torch.tensor([0.0, 0.0999, 0.1, 0.55, 0.9999, 1.0]), 10)
    assert q.tolist() == [0, 0, 1, 5, 9, 9]
    with pytest.raises(UsageError):
        normalise(grid, "median")


def test_topk_dilation_and_paste():
    grid = torch.tensor([[0.1, 0.9, 0.2, 0.0], [0.0, 0.3, 0.8, 0.05]])
    m = select_topk(grid, 0.25)
    assert m.sum() == 2 and m[0, 1] and m[1, 2]
    assert parse_select("top:20%") == pytest.approx(0.2) and parse_select("top:0.5") == 0.5
    with pytest.raises(UsageError):
        parse_select("best:20")
    one = torch.zeros(5, 5, dtype=torch.bool)
    one[2, 2] = True
    assert dilate(one, 1).sum() == 9 and dilate(one, 2).sum() == 25 and dilate(one, 0).sum() == 1
    r = select_random((3, 4, 5), 0.2, torch.Generator().manual_seed(0))
    assert r.shape == (3, 4, 5) and r.flatten(1).sum(1).tolist() == [4, 4, 4]
    pm = blocks_to_pixels(m, 3, 5, 11)  # cropped at the edges
    assert pm.shape == (5, 11) and pm[0:3, 3:6].all() and pm[3:5, 6:9].all() and pm.sum() == 9 + 6
    base, enh = torch.zeros(3, 5, 11), torch.ones(3, 5, 11)
    out = paste(base, enh, pm)
    assert torch.equal(out[0], pm.float()) and torch.equal(out[2], pm.float())


def test_label_frames_round_trip(tmp_path):
    from qualitas.importance.enhancers import Bicubic, Unsharp

    frames = [
        (f"f{i}.png", torch.rand(3, 16, 24, generator=torch.Generator().manual_seed(i))) for i in range(3)
    ]

    def obj(x):
        return x[..., :8, :8].pow(2).sum(dim=(1, 2, 3))  # only the top-left corner matters

    labels = label_frames(frames, obj, Unsharp(2), Bicubic(2), scale=2, block=8, k=4)
    raw = np.stack(labels.raw)
    assert raw.shape == (3, 2, 3)
    assert (raw[:, 0, 0] > 0).all() and (raw[:, :, 1:] == 0).all()
    labels.save(tmp_path)
    back = LabelSet.load(tmp_path)
    assert back.frames == ["f0.png", "f1.png", "f2.png"] and back.k == 4 and back.scale == 2
    assert all(c[0, 0] == 3 and c.dtype == np.uint8 for c in back.classes)
    np.testing.assert_array_equal(np.stack(back.raw), raw)

"""Selective enhancement accounting, ROI rectangles and a tiny ROI encode."""

from __future__ import annotations

import pytest
import torch

from qualitas.errors import UsageError
from qualitas.importance.apply import (
    addroi_filter,
    decode_frames,
    roi_encode_compare,
    roi_rectangles,
    selective_enhance,
)


def test_selective_enhance_recovers_the_selected_gain():
    cheap, enh = torch.zeros(3, 32, 48), torch.ones(3, 32, 48)

    def obj(x):  # only the left 16 columns count
        return x[..., :16].sum(dim=(1, 2, 3))

    mask = torch.zeros(2, 3, dtype=torch.bool)
    mask[0, 0] = True  # block 8 px at scale 2 -> 16x16 enhanced pixels
    frame, res = selective_enhance(obj, cheap, enh, mask, block=8, scale=2)
    assert res.cost == pytest.approx(256 / (32 * 48)) and res.recovered == pytest.approx(0.5)
    _, res = selective_enhance(obj, cheap, enh, mask, block=8, scale=2, margin=1)
    assert res.recovered == pytest.approx(1.0) and res.cost == pytest.approx(2 * 2 * 256 / (32 * 48))


def test_roi_rectangles_cover_exactly():
    mask = torch.tensor([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    rects = roi_rectangles(mask, 16, 60, 48)  # last column is partial (60 px wide)
    assert sorted(rects) == sorted([(0, 0, 32, 32), (48, 0, 12, 16), (48, 32, 12, 16)])
    assert addroi_filter(rects[:1], -0.5) == "addroi=x=0:y=0:w=32:h=32:qoffset=-0.5"
    with pytest.raises(UsageError):
        addroi_filter(rects, -2)


def test_roi_encode_writes_valid_files(tmp_path):
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(6, 3, 64, 64, generator=g)
    grid = torch.zeros(4, 4)
    grid[1, 1] = 1.0

    def obj(x):
        return -((x[..., 16:32, 16:32] - frames[0, :, 16:32, 16:32]) ** 2).mean(dim=(1, 2, 3))

    rep = roi_encode_compare(
        frames, grid, tmp_path, obj, block=16, bitrate_kbps_target=200, fraction=0.0625, preset="ultrafast"
    )
    for name in ("plain", "roi"):
        dec = decode_frames(tmp_path / f"{name}.mp4")
        assert dec.shape == (6, 3, 64, 64)
        assert rep[name]["kbps"] > 0
    assert rep["regions"] == 1 and (tmp_path / "encode.json").is_file()

"""Task losses and figures against direct computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qualitas.errors import ConfigError
from qualitas.evaluation.vision import ClassificationMetrics, SegmentationMetrics, seg_figures
from qualitas.losses import build_loss


def test_losses():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 3, 0, 1])
    ce = build_loss({"name": "cross_entropy", "label_smoothing": 0.2})
    assert torch.allclose(ce(z, y), F.cross_entropy(z, y, label_smoothing=0.2))
    zs, m = torch.randn(2, 3, 4, 4, generator=g), torch.randint(0, 3, (2, 4, 4), generator=g)
    m[0, 0, 0] = 255
    seg = build_loss("seg_cross_entropy")
    keep = m != 255
    want = F.cross_entropy(zs.permute(0, 2, 3, 1)[keep], m[keep])
    assert torch.allclose(seg(zs, m), want)
    t = (torch.rand(6, 4, generator=g) > 0.5).float()
    assert torch.allclose(build_loss("bce")(z, t), F.binary_cross_entropy_with_logits(z, t))
    with pytest.raises(ConfigError, match="use loss bce"):
        ce(z, t)
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        build_loss({"name": "cross_entropy", "label_smoothing": 1.5})


def test_figures_match_hand_counts():
    cm = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    f = seg_figures(cm)
    assert f["iou"][:2] == pytest.approx([3 / 4, 2 / 3]) and f["iou"][2] is None
    assert f["miou"] == pytest.approx((3 / 4 + 2 / 3) / 2) and f["pixel_acc"] == pytest.approx(5 / 6)
    sm = SegmentationMetrics(3, ignore_index=255)
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, 0, 0, :2] = 5
    logits[0, 1, 0, 2:] = 5
    sm.update(logits, torch.tensor([[[0, 1, 1, 255]]]))
    out = sm.compute()
    assert out["n"] == 3 and out["pixel_acc"] == pytest.approx(2 / 3)
    cls = ClassificationMetrics(3)
    cls.update(torch.eye(3)[[0, 1, 1, 2]] * 4, torch.tensor([0, 1, 2, 2]))
    r = cls.compute()
    assert r["top1"] == pytest.approx(0.75) and r["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert r["recall"] == pytest.approx([1.0, 1.0, 0.5]) and r["support"] == [1, 1, 2]


def test_segmentation_counted_at_mask_resolution_by_hand():
    # 2x2 logits -> 4x4 mask. Bilinear (align_corners=False) weights of the top-left input
    # pixel along one axis are 1, .75, .25, 0, so the class-1 margin 2*wy*wx - 1 of
    # d = [[1, -1], [-1, -1]] is > 0 exactly on the top-left 2x2 block (1, .75, .75, .5625).
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1] = torch.tensor([[1.0, -1.0], [-1.0, -1.0]])
    # Thin annotation: a 1-px column (x = 1) of class 1, one pixel ignored.
    mask = torch.zeros(4, 4, dtype=torch.long)
    mask[:, 1] = 1
    mask[3, 3] = 255
    sm = SegmentationMetrics(2, ignore_index=255)
    (pred,) = sm.update_full(logits, [mask])
    want_pred = torch.zeros(4, 4, dtype=torch.long)
    want_pred[:2, :2] = 1
    assert torch.equal(pred, want_pred)
    out = sm.compute()
    # class 1: tp 2 ((0,1), (1,1)), predicted 4, true 4 -> IoU 2 / 6; class 0: tp 9 of 15
    # counted pixels; predicted 11, true 11 -> IoU 9 / 13.
    assert out["n"] == 15 and out["iou"] == pytest.approx([9 / 13, 2 / 6])
    assert out["miou"] == pytest.approx((9 / 13 + 2 / 6) / 2) and out["pixel_acc"] == pytest.approx(11 / 15)
    # Counting against a nearest-resized 2x2 copy of the mask (what resizing masks did)
    # loses the column: a different figure.
    small = SegmentationMetrics(2, ignore_index=255)
    small.update(logits, F.interpolate(mask[None, None].float(), size=(2, 2), mode="nearest")[0].long())
    assert small.compute()["miou"] != pytest.approx(out["miou"])

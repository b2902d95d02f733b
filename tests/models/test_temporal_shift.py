"""TSM shift maths against a hand-worked example and the official in-place formulation."""

from __future__ import annotations

import torch

from qualitas.models import build_model, temporal_shift
from qualitas.models.temporal import AttentionPool, MeanPool, TemporalShiftConv2d, insert_temporal_shift


def test_shift_hand_worked():
    # one clip, T=3 frames, C=4 channels, 1x1 pixels; x[t, c] = 10 t + c; shift_div=4 -> fold=1
    x = torch.tensor([[10.0 * t + c for c in range(4)] for t in range(3)]).view(3, 4, 1, 1)
    out = temporal_shift(x, num_segments=3, shift_div=4).view(3, 4)
    expected = torch.tensor(
        [
            [10.0, 0.0, 2.0, 3.0],  # ch0 <- next frame (t=1); ch1 <- previous (none: 0)
            [20.0, 1.0, 12.0, 13.0],  # ch0 <- t=2; ch1 <- t=0
            [0.0, 11.0, 22.0, 23.0],  # ch0 <- none; ch1 <- t=1
        ]
    )
    torch.testing.assert_close(out, expected)


def _official_shift(x: torch.Tensor, n_segment: int, fold_div: int) -> torch.Tensor:
    """The TSM authors' formulation (in-place writes into a zero tensor), as a reference."""
    nt, c, h, w = x.size()
    x = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


def test_shift_matches_official_and_keeps_clips_apart():
    torch.manual_seed(0)
    x = torch.randn(3 * 5, 16, 2, 3)  # 3 clips of 5 frames
    torch.testing.assert_close(temporal_shift(x, 5, 8), _official_shift(x, 5, 8))
    # Clips do not leak into each other: shifting clip 1 alone gives the same rows.
    torch.testing.assert_close(temporal_shift(x, 5, 8)[5:10], temporal_shift(x[5:10], 5, 8))


def test_shift_conv_shares_parameters_and_blocks_are_counted():
    from qualitas.models.backbones import create_backbone

    bb = create_backbone("test_resnet")
    conv = bb.net.layer1[0].conv1
    n = insert_temporal_shift(bb, num_segments=4, shift_div=8)
    assert n == 4  # test_resnet: one block in each of its four stages
    new = bb.net.layer1[0].conv1
    assert isinstance(new, TemporalShiftConv2d) and new.weight is conv.weight


def test_tsm_mixes_neighbouring_frames_only():
    torch.manual_seed(0)
    clip = torch.rand(1, 5, 3, 32, 32)
    changed = clip.clone()
    changed[:, 2] = torch.rand(3, 32, 32)  # change frame 2 only

    def frame_features(model, x):
        with torch.no_grad():
            return model.features(x.flatten(0, 1))  # (T, C) per-frame features

    def build(**kwargs):
        model = build_model("nr_vqa", backbone="test_resnet", **kwargs).eval()
        # timm zero-initialises each block's last BN (residual branch = 0 at init), which
        # would hide the shift; give every BN a non-zero scale.
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.uniform_(m.weight, 0.5, 1.5)
        return model

    plain = build()
    tsm = build(tsm=True, num_segments=5)
    diff_plain = (frame_features(plain, clip) - frame_features(plain, changed)).abs().sum(1)
    diff_tsm = (frame_features(tsm, clip) - frame_features(tsm, changed)).abs().sum(1)
    assert diff_plain[2] > 0 and diff_plain[[0, 1, 3, 4]].eq(0).all()
    # one shift per block and four blocks: frame 2 reaches every frame within 4 steps
    assert (diff_tsm > 0).all()
    tsm1 = build(tsm=True, num_segments=5)
    for block in (
        tsm1.features.backbone.net.layer2,
        tsm1.features.backbone.net.layer3,
        tsm1.features.backbone.net.layer4,
    ):
        block[0].conv1.shift_div = 10**6  # fold 0: no shift in these blocks
    diff_one = (frame_features(tsm1, clip) - frame_features(tsm1, changed)).abs().sum(1)
    # a single shifting block moves information exactly one frame each way
    assert (diff_one[[1, 2, 3]] > 0).all() and diff_one[[0, 4]].eq(0).all()


def test_pools():
    x = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])  # (B=1, T=2, C=2)
    torch.testing.assert_close(MeanPool(2)(x), torch.tensor([[2.0, 4.0]]))
    same = torch.tensor([[[1.0, -2.0]] * 3])
    # attention weights sum to one: identical frames pool to that frame
    torch.testing.assert_close(AttentionPool(2, hidden=4)(same), torch.tensor([[1.0, -2.0]]))


def test_tsm_on_efficientnet_lite_blocks():
    """TSM sits on the residual branch of Lite0's 9 skip-connected inverted residuals, loads the
    pretrained weights unchanged, and mixes neighbouring frames."""
    model = build_model(
        "nr_vqa", backbone="tf_efficientnet_lite0", pretrained=True, tsm=True, num_segments=3
    ).eval()
    net = model.features.backbone.net
    shifted = [m for m in net.modules() if isinstance(m, TemporalShiftConv2d)]
    assert len(shifted) == 9 and all(m.kernel_size == (1, 1) for m in shifted)
    plain = build_model("nr_vqa", backbone="tf_efficientnet_lite0", pretrained=True).eval()
    assert torch.equal(
        net.blocks[1][1].conv_pw.weight, plain.features.backbone.net.blocks[1][1].conv_pw.weight
    )
    torch.manual_seed(0)
    clip = torch.rand(1, 3, 3, 64, 64)
    changed = clip.clone()
    changed[:, 0] = torch.rand(3, 64, 64)
    with torch.no_grad():
        diff = (model.features(clip.flatten(0, 1)) - model.features(changed.flatten(0, 1))).abs().sum(1)
    assert (diff[1:] > 0).all()  # frame 0's change reached frames 1 and 2 through the shifts

"""Every registered model builds, runs forward and backward, and has a consistent card."""

from __future__ import annotations

import pytest
import torch

from qualitas.errors import ConfigError, UsageError
from qualitas.models import MODELS, ModelSpec, build_model, expected_score, model_from_spec, to_score

TINY = "test_resnet"  # 0.4M-parameter timm ResNet: fast, and has residual blocks for TSM
B, T, S = 2, 4, 64

# Variants per architecture: every head, fusion, pooling and TSM on/off is built at least once.
VARIANTS = {
    "nr_iqa": [{}, {"head": "distribution", "num_bins": 5, "hidden": 0}],
    "fr_iqa": [{"fusion": "diff6"}, {"fusion": "siamese", "head": "distribution", "num_bins": 4}],
    "nr_vqa": [
        {"temporal_pool": "mean"},
        {"tsm": True, "num_segments": T, "temporal_pool": "attention"},
        {"temporal_pool": "gru", "head": "distribution", "num_bins": 3},
    ],
    "fr_vqa": [{"tsm": True, "num_segments": T}, {"fusion": "siamese", "temporal_pool": "attention"}],
}


def inputs_for(spec: ModelSpec, batch: int = B) -> tuple[torch.Tensor, ...]:
    shape = (batch, T, 3, S, S) if spec.video else (batch, 3, S, S)
    n = 2 if spec.full_reference else 1
    return tuple(torch.rand(shape) for _ in range(n))


def test_quality_models_are_registered():
    assert set(VARIANTS) <= set(MODELS.names())


# detector: lists of images in, detection dicts out (losses need targets): its own tests in
# tests/models/test_detection_models.py and tests/tasks/test_detection_task.py.
@pytest.mark.parametrize("name", [n for n in MODELS.names() if n not in VARIANTS and n != "detector"])
def test_other_registered_models_build_forward_backward(name):
    """Models added by other parts (e.g. ``importance``): defaults build, run and train."""
    torch.manual_seed(0)
    model = build_model(name, backbone=TINY)
    out = model(*inputs_for(model.spec))
    assert out.shape[0] == B and torch.isfinite(out).all()
    out.float().sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(
    "name,kwargs", [(n, kw) for n in sorted(VARIANTS) for kw in VARIANTS[n]], ids=lambda v: str(v)
)
def test_forward_backward_shapes(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, backbone=TINY, **kwargs)
    spec = model.spec
    assert spec.arch == name
    assert spec.full_reference == name.startswith("fr_")
    assert spec.video == name.endswith("vqa")
    out = model(*inputs_for(spec))
    if spec.output == "distribution":
        n_bins = kwargs["num_bins"]
        assert out.shape == (B, n_bins)
        torch.testing.assert_close(out.sum(1), torch.ones(B))
        assert model.bins.shape == (n_bins,)
        assert spec.bins == tuple(float(k) for k in range(1, n_bins + 1))
        score = to_score(out, model.bins)
    else:
        assert out.shape == (B,)
        assert model.bins is None and spec.bins is None
        score = to_score(out, None)
    score.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    if spec.video:
        assert spec.num_frames == kwargs.get("num_segments", 8)
        assert spec.fixed_num_frames == kwargs.get("tsm", False)


def test_card_round_trip_rebuilds_same_network():
    model = build_model("nr_vqa", backbone=TINY, tsm=True, num_segments=T, temporal_pool="attention")
    card = model.spec.to_dict()
    assert card["build_kwargs"]["tsm"] is True and "pretrained_path" not in card["build_kwargs"]
    assert ModelSpec.from_dict(card) == model.spec
    clone = model_from_spec(card)
    clone.load_state_dict(model.state_dict(), strict=True)
    clone.eval(), model.eval()
    (x,) = inputs_for(model.spec)
    torch.testing.assert_close(clone(x), model(x))


def test_normalisation_is_inside_the_model():
    model = build_model("nr_iqa", backbone="resnet10t").eval()
    assert model.spec.mean == (0.485, 0.456, 0.406) and model.spec.normalized_inside
    x = torch.rand(1, 3, S, S)
    mean = torch.tensor(model.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.spec.std).view(1, 3, 1, 1)
    expected = model.head(model.features.backbone((x - mean) / std))
    torch.testing.assert_close(model(x), expected)
    assert {"features.normalize.mean", "features.normalize.std"} <= set(model.state_dict())


def test_diff6_feeds_dist_and_difference():
    model = build_model("fr_iqa", backbone=TINY, fusion="diff6").eval()
    seen = {}
    model.features.backbone.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    dist, ref = torch.rand(1, 3, S, S), torch.rand(1, 3, S, S)
    model(dist, ref)
    x = seen["x"]
    assert x.shape == (1, 6, S, S)
    # mean/std are 0.5 for test_resnet: d = 2*dist - 1, r - d = 2*(ref - dist)
    torch.testing.assert_close(x[:, :3], 2 * dist - 1)
    torch.testing.assert_close(x[:, 3:], 2 * (ref - dist))


def test_expected_score_by_hand():
    probs = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    bins = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(expected_score(probs, bins), torch.tensor([0.2 + 0.6 + 1.5, 1.0]))
    model = build_model(
        "nr_iqa", backbone=TINY, head="distribution", num_bins=3, bin_values=[0.0, 50.0, 100.0]
    )
    assert model.bins.tolist() == [0.0, 50.0, 100.0]


def test_config_errors():
    with pytest.raises(ConfigError, match="did you mean 'temporal_pool'"):
        build_model("nr_vqa", backbone=TINY, temporal_pol="mean")
    with pytest.raises(ConfigError, match="did you mean 'nr_iqa'"):
        build_model("nr_iq")
    with pytest.raises(ConfigError, match="unknown backbone 'resnet181'.*did you mean"):
        build_model("nr_iqa", backbone="resnet181")
    with pytest.raises(ConfigError, match="fusion"):
        build_model("fr_iqa", backbone=TINY, fusion="concat")
    with pytest.raises(ConfigError, match="temporal_pools"):
        build_model("nr_vqa", backbone=TINY, temporal_pool="max")
    with pytest.raises(ConfigError, match="heads"):
        build_model("nr_iqa", backbone=TINY, head="linear")
    with pytest.raises(ConfigError, match="bin_values has 2 values"):
        build_model("nr_iqa", backbone=TINY, head="distribution", num_bins=3, bin_values=[1, 2])
    with pytest.raises(ConfigError, match="backbone with residual blocks"):
        build_model("nr_vqa", backbone="test_efficientnet", tsm=True)


def test_input_shape_errors():
    model = build_model("nr_vqa", backbone=TINY, tsm=True, num_segments=T)
    with pytest.raises(UsageError, match="T=4"):
        model(torch.rand(1, 3, 3, S, S))
    with pytest.raises(UsageError, match=r"\(B,T,3,H,W\)"):
        model(torch.rand(1, 3, S, S))
    iqa = build_model("fr_iqa", backbone=TINY)
    with pytest.raises(UsageError, match="same shape"):
        iqa(torch.rand(1, 3, S, S), torch.rand(1, 3, S, 32))
    with pytest.raises(UsageError, match=r"\(B,3,H,W\)"):
        iqa(torch.rand(1, 1, S, S), torch.rand(1, 1, S, S))


def test_video_model_without_tsm_accepts_any_clip_length():
    model = build_model("nr_vqa", backbone=TINY, num_segments=8).eval()
    assert model(torch.rand(1, 3, 3, S, S)).shape == (1,)


@pytest.mark.parametrize(
    "backbone", ["mobilenetv3_small_050", "test_efficientnet", "test_convnext", "resnet10t"]
)
def test_other_backbone_families(backbone):
    """Pooled feature width is read correctly (MobileNetV3 has a conv head after pooling)."""
    model = build_model("nr_iqa", backbone=backbone, hidden=0).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, S, S)).shape == (1,)

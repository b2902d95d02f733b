"""The detector analytics: torchvision's own scores, class filtering, gradients, and the
smooth fixed-box variant (docs/importance.md, "Analytics")."""

from __future__ import annotations

import pytest
import torch

from qualitas.errors import UsageError
from qualitas.importance.analytics import DetectorObjective, FixedBoxesDetectorObjective, reference_objective
from qualitas.models.detection import DetectorSpec, build_detector


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return torch.rand(2, 3, 128, 160, generator=torch.Generator().manual_seed(0))


def _model(family: str):
    torch.manual_seed(0)
    spec = DetectorSpec(family, "tf_efficientnet_lite0", 3, min_size=128, max_size=160, fpn_channels=64)
    return build_detector(spec)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("family", ["faster_rcnn", "fcos"])
def test_detect_mode_sums_the_models_own_scores_of_kept_classes(family: str, frames: torch.Tensor) -> None:
    model = _model(family)
    thr = 0.05
    everything = DetectorObjective(model, threshold=thr)
    only_one = DetectorObjective(model, keep=[1], threshold=thr)
    with torch.no_grad():
        dets = model(list(frames))
        v_all, v_one = everything(frames), only_one(frames)
    for i, d in enumerate(dets):
        ok = d["scores"] >= thr
        assert ok.any(), "the untrained model should still give candidates above 0.05"
        assert v_all[i] == pytest.approx(float(d["scores"][ok].sum()), rel=1e-5)
        one = ok & (d["labels"] == 1)
        assert v_one[i] == pytest.approx(float(d["scores"][one].sum()), rel=1e-5)
    assert (v_one < v_all).all()
    e = frames.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(everything(e).sum(), e)
    assert g.abs().sum() > 0


def test_reference_variant_is_smooth_and_follows_its_gradient(frames: torch.Tensor) -> None:
    """Two-stage: the box head's softmax at RoI-pooled fixed boxes."""
    model = _model("faster_rcnn")
    ref = frames[:1]
    obj = reference_objective(DetectorObjective(model, threshold=0.05, score="logit", boxes="reference"), ref)
    assert isinstance(obj, FixedBoxesDetectorObjective) and len(obj.boxes) > 0
    e = ref.clone().requires_grad_(True)
    value = obj(e)
    (g,) = torch.autograd.grad(value.sum(), e)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    value = float(value.detach())
    # A step along the gradient whose first-order gain is 1% of the value.
    step = 0.01 * abs(value) * g / g.norm() ** 2
    with torch.no_grad():
        tiny = float(obj(ref + 1e-5 * torch.randn_like(ref)))
        up, down = float(obj(ref + step)), float(obj(ref - step))
    # No NMS and no threshold: a tiny perturbation moves the value a little, and a small step
    # along the gradient raises it (a step against it lowers it).
    assert abs(tiny - value) < 0.01 * abs(value)
    assert up > value > down


@pytest.mark.parametrize("family", ["fcos", "ssdlite"])
def test_dense_fixed_box_score_at_the_reference_is_the_detectors_own(
    family: str, frames: torch.Tensor
) -> None:
    """Dense detectors: at the reference frame, a detected box's own location decodes to it
    (IoU 1), so the fixed-box score equals torchvision's score for every box NMS kept
    whole (clipping to the image moves a box away from its decoded extent)."""
    model = _model(family)
    ref = frames[:1]
    obj = DetectorObjective(model, threshold=0.05)
    with torch.no_grad():
        det = obj.detect(ref)[0]
        b = det["boxes"]
        inner = (
            (b[:, :2] > 0.5).all(1)
            & (b[:, 2] < 159.5)
            & (b[:, 3] < 127.5)
            & ((b[:, 2:] - b[:, :2]).amin(1) > 1)
        )
        assert inner.sum() >= 3
        fixed = FixedBoxesDetectorObjective(model, b[inner], det["labels"][inner])(ref)
    assert float(fixed) == pytest.approx(float(det["scores"][inner].sum()), rel=1e-5)


def test_reference_without_detections_scores_zero_with_a_gradient(frames: torch.Tensor) -> None:
    model = _model("fcos")
    obj = FixedBoxesDetectorObjective(model, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    e = frames.clone().requires_grad_(True)
    v = obj(e)
    assert v.tolist() == [0.0, 0.0]
    (g,) = torch.autograd.grad(v.sum(), e, allow_unused=True)
    assert g is not None and g.abs().sum() == 0


def test_fixed_boxes_move_with_the_detectors_resize() -> None:
    """The same scene at twice the size (the transform halves it back) scores the same boxes
    scaled by two about the same."""
    model = _model("faster_rcnn")
    small = torch.rand(1, 3, 128, 160, generator=torch.Generator().manual_seed(1))
    big = torch.nn.functional.interpolate(small, scale_factor=2, mode="nearest")
    boxes = torch.tensor([[20.0, 30.0, 70.0, 100.0], [90.0, 10.0, 150.0, 60.0]])
    labels = torch.tensor([1, 2])
    with torch.no_grad():
        a = FixedBoxesDetectorObjective(model, boxes, labels)(small)
        b = FixedBoxesDetectorObjective(model, boxes * 2, labels)(big)
    assert float(b) == pytest.approx(float(a), rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score": "odds"}, "score must be"),
        ({"boxes": "all"}, "boxes must be"),
        ({"threshold": 1.5}, "threshold"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        DetectorObjective(torch.nn.Identity(), **kwargs)

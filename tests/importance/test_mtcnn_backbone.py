"""The frozen MTCNN P-Net pyramid backbone (``mtcnn_pnet``) and the reference-box objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("facenet_pytorch")
skimage_data = pytest.importorskip("skimage.data")

from qualitas.errors import ConfigError  # noqa: E402
from qualitas.models import build_model, create_backbone, list_backbones  # noqa: E402
from qualitas.models.mtcnn_backbone import pnet_trunk, pnet_weights_path  # noqa: E402


def _astronaut(size: int) -> torch.Tensor:
    img = torch.from_numpy(np.ascontiguousarray(skimage_data.astronaut())).permute(2, 0, 1).float() / 255
    return F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_registered_frozen_and_loaded_from_the_wheel():
    assert {"mtcnn_pnet", "mtcnn_pnet_faceness"} <= set(list_backbones())
    bb = create_backbone("mtcnn_pnet")
    assert not any(p.requires_grad for p in bb.parameters())
    wheel = torch.load(pnet_weights_path(), map_location="cpu", weights_only=True)
    own = bb.net.pnet.state_dict()
    assert set(wheel) == set(own) and all(torch.equal(wheel[k], own[k]) for k in wheel)
    assert bb.mean == (0.5,) * 3 and bb.std[0] == pytest.approx(128 / 255)
    # train() keeps the frozen P-Net in inference mode.
    assert not bb.train().net.pnet.training
    with pytest.raises(ConfigError, match="in_chans"):
        create_backbone("mtcnn_pnet", in_chans=6)


def test_pretrained_path_loads_a_state_dict_file(tmp_path):
    wheel = torch.load(pnet_weights_path(), map_location="cpu", weights_only=True)
    changed = {k: v + 1.0 for k, v in wheel.items()}
    torch.save({"state_dict": changed}, tmp_path / "pnet.pth")
    bb = create_backbone("mtcnn_pnet", pretrained_path=str(tmp_path / "pnet.pth"))
    assert torch.equal(bb.net.pnet.conv1.weight, changed["conv1.weight"])


def test_trunk_log_odds_match_pnet_softmax():
    bb = create_backbone("mtcnn_pnet")
    x = torch.randn(2, 3, 30, 41)
    feats, logodds = pnet_trunk(bb.net.pnet, x)
    _, prob = bb.net.pnet(x)
    # P-Net: 3x3 conv, 2x2 max-pool (ceil), 3x3, 3x3 -> ceil((H - 2) / 2) - 4.
    assert feats.shape == (2, 32, 10, 16) and logodds.shape == (2, 1, 10, 16)
    torch.testing.assert_close(logodds.sigmoid()[:, 0], prob[:, 1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("name", "chans"), [("mtcnn_pnet", 7 * 33), ("mtcnn_pnet_faceness", 7)])
def test_pyramid_shapes_including_tiny_frames(name, chans):
    bb = create_backbone(name)
    assert bb.net.feature_info == [{"num_chs": chans, "reduction": 4, "module": "pyramid"}]
    for h, w in ((132, 180), (36, 44), (8, 8)):  # levels never go below P-Net's 12 pixels
        (m,) = bb.net.forward_intermediates(torch.rand(1, 3, h, w), indices=[0])
        assert m.shape == (1, chans, -(-h // 4), -(-w // 4))
    assert bb(torch.rand(2, 3, 40, 40)).shape == (2, chans)


def test_faceness_peaks_on_the_face():
    """Without any training, the pyramid's face log-odds are highest on the astronaut's face
    (upper middle of skimage's photo) at 128x128 (a 4x-downscaled 512x512 frame)."""
    bb = create_backbone("mtcnn_pnet_faceness")
    x = (_astronaut(128) - 0.5) / (128 / 255)
    (m,) = bb.net.forward_intermediates(x)
    best = m.amax(1)[0]  # (32, 32) on the stride-4 grid
    y, xx = divmod(int(best.argmax()), best.shape[1])
    assert 5 <= y <= 17 and 10 <= xx <= 22, (y, xx)


def test_predictor_with_pnet_trains_only_the_head_and_exports_to_onnx(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = build_model("importance", backbone="mtcnn_pnet", block=16, num_classes=10, hidden=8).eval()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    x = torch.rand(1, 3, 64, 96)
    out = model(x)
    assert out.shape == (1, 10, 4, 6)
    # Stride-4 maps are averaged over each 16x16 block (4x4 cells), not point-sampled.
    assert model.pool == 4
    assert build_model("importance", backbone="mtcnn_pnet")(torch.rand(2, 3, 36, 44)).shape == (2, 3, 3)
    path = tmp_path / "imp.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["frame"], output_names=["logits"], dynamo=False)
    got = onnxruntime.InferenceSession(str(path)).run(None, {"frame": x.numpy()})[0]
    np.testing.assert_allclose(got, out.detach().numpy(), atol=1e-4)


def test_reference_boxes_objective_is_smooth_and_matches_the_cascade_at_the_reference():
    from qualitas.importance.analytics import FixedBoxesObjective, build_analytics, reference_objective

    detect = build_analytics("mtcnn:score=logit")
    ref = build_analytics("mtcnn:score=logit,boxes=reference")
    face = _astronaut(256)
    assert reference_objective(detect, face) is detect
    fixed = reference_objective(ref, face)
    assert isinstance(fixed, FixedBoxesObjective) and fixed.boxes.shape == (1, 4)
    # At the reference both variants are the same number (same boxes, same O-Net).
    assert fixed(face).item() == pytest.approx(detect(face).item(), abs=1e-4)
    # Continuous in the pixels: a blend between the face and a blurred copy changes the
    # objective by a small, monotone-ish amount per step (no detection, no threshold jumps).
    blur = F.avg_pool2d(face, 5, stride=1, padding=2, count_include_pad=False)
    vals = [fixed(torch.lerp(blur, face, t)).item() for t in torch.linspace(0, 1, 6).tolist()]
    steps = np.abs(np.diff(vals))
    assert steps.max() < 0.5 * (abs(vals[-1] - vals[0]) + 1.0)
    x = blur.clone().requires_grad_(True)
    fixed(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # A frame without a face: no boxes, objective 0.
    assert reference_objective(ref, torch.full_like(face, 0.5))(face).item() == 0.0


def test_labels_do_not_depend_on_the_box_variant_and_apply_uses_the_reference():
    from qualitas.importance.analytics import build_analytics
    from qualitas.importance.apply import selective_enhance
    from qualitas.importance.enhancers import Bicubic, bicubic_down
    from qualitas.importance.grid import select_topk
    from qualitas.importance.label import label_frames

    hr = _astronaut(256)
    lr = bicubic_down(hr, 4)[0]
    out = {}
    for boxes in ("detect", "reference"):
        obj = build_analytics(f"mtcnn:score=logit,boxes={boxes}")
        out[boxes] = label_frames([("a", lr)], obj, lambda x: hr, Bicubic(4), scale=4, block=16)
    det, ref = out["detect"], out["reference"]
    np.testing.assert_allclose(ref.raw[0], det.raw[0], rtol=1e-4, atol=1e-6)
    assert ref.objective_enhanced[0] == pytest.approx(det.objective_enhanced[0], abs=1e-4)
    assert ref.raw[0].max() > 0
    # The reference variant scores the cheap frame at the enhanced frame's boxes.
    obj = build_analytics("mtcnn:score=logit,boxes=reference")
    u = Bicubic(4)(lr[None])[0]
    fixed = obj.with_reference(hr)
    assert ref.objective_cheap[0] == pytest.approx(fixed(u[None]).item(), abs=1e-4)
    # selective_enhance conditions on the enhanced frame too: all blocks = full enhancement.
    mask = select_topk(torch.from_numpy(ref.raw[0]), 1.0)
    _, res = selective_enhance(obj, u, hr[0], mask, block=16, scale=4)
    assert res.objective_selective == pytest.approx(res.objective_full, abs=1e-4)
    assert res.objective_cheap == pytest.approx(ref.objective_cheap[0], abs=1e-4)

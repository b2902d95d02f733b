"""The parameter-free ``nss`` backbone: shapes, that its statistics see distortions, export."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from qualitas.errors import ConfigError
from qualitas.models import build_model, create_backbone
from qualitas.models.nss import NSSFeatures, _periodicity, feature_names


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A real 128x128 photo crop (scikit-image's astronaut), (1, 3, H, W) in [0, 1]."""
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()[40:168, 180:308]
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    arr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(out).permute(2, 0, 1)[None]


def test_shape_finite_and_registered(photo):
    bb = create_backbone("nss")
    assert isinstance(bb, NSSFeatures)
    assert bb.mean == (0.0, 0.0, 0.0) and bb.std == (1.0, 1.0, 1.0)
    x = torch.cat([photo, torch.zeros_like(photo), torch.ones_like(photo)])  # flat frames too
    f = bb.eval()(x)
    assert f.shape == (3, bb.num_features)
    assert torch.isfinite(f).all()
    # Any size >= 32 works (crops and full frames share the model).
    assert bb.raw(torch.rand(2, 3, 40, 72)).shape == (2, bb.num_features)
    assert len(feature_names()) == bb.num_features == len(set(feature_names()))
    assert not list(bb.parameters())  # nothing to learn: only BatchNorm running statistics


def test_statistics_respond_to_distortions(photo):
    m = NSSFeatures().eval()
    base = m.raw(photo)[0]
    names = feature_names()
    grad_energy = names.index("s0_grad_logenergy")
    mscn_var = names.index("s0_mscn_logvar")
    blurred = torch.nn.functional.avg_pool2d(photo, 5, stride=1, padding=2, count_include_pad=False)
    assert m.raw(blurred)[0, grad_energy] < base[grad_energy] - 0.3
    noisy = (photo + 0.08 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert m.raw(noisy)[0, grad_energy] > base[grad_energy] + 0.3
    assert m.raw(noisy)[0, mscn_var] != pytest.approx(float(base[mscn_var]), abs=0.05)
    # Blockiness (8-px periodicity of horizontal gradients) rises with JPEG compression.
    block = names.index("block8_x_peak")
    assert m.raw(_jpeg(photo, 10))[0, block] > m.raw(_jpeg(photo, 95))[0, block] + 0.05
    # Brightening shifts the mean colour statistics.
    mean_r = names.index("r_mean")
    assert m.raw((photo + 0.2).clamp(0, 1))[0, mean_r] > base[mean_r] + 0.1


def test_periodicity_is_phase_free():
    profile = torch.ones(1, 64)
    profile[0, 3::8] = 5.0  # an 8-px grid, offset by 3
    shifted = torch.roll(profile, 2, dims=1)
    a, b = _periodicity(profile, 8), _periodicity(shifted, 8)
    assert float(a[0]) == pytest.approx(float(b[0]))
    assert float(a[0]) > float(_periodicity(torch.ones(1, 64), 8)[0]) + 1.0


def test_batchnorm_learns_feature_statistics():
    bb = NSSFeatures().train()
    x = torch.rand(4, 3, 48, 48)
    bb(x)
    # Cumulative average (momentum=None): after one batch, exactly that batch's statistics,
    # so evaluation is scaled right from the first epoch.
    torch.testing.assert_close(bb.norm.running_mean, bb.raw(x).mean(dim=0), rtol=1e-4, atol=1e-5)
    bb.eval()
    out = bb(x)
    assert out.mean(dim=0).abs().max() < 1e-3  # standardised by the learned statistics


def test_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="RGB"):
        create_backbone("nss", in_chans=6)
    with pytest.raises(ConfigError, match="no weights"):
        create_backbone("nss", pretrained_path="w.pth")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_nr_models_with_nss_export_to_onnx():
    ort = pytest.importorskip("onnxruntime")
    model = build_model("nr_iqa", backbone="nss", hidden=16).eval()
    x = torch.rand(2, 3, 64, 64)
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"], output_names=["score"])
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-4)
    video = build_model("nr_vqa", backbone="nss", hidden=16, num_segments=2).eval()
    with torch.no_grad():
        assert video(torch.rand(1, 2, 3, 48, 48)).shape == (1,)

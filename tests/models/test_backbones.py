"""Backbones: offline weight loading (round trip, prefixes, 6-channel adaptation) and errors."""

from __future__ import annotations

import pytest
import torch

from qualitas.errors import ConfigError
from qualitas.models import build_model, create_backbone, list_backbones, load_weights
from qualitas.models.backbones import RECOMMENDED_BACKBONES, read_state_dict

TINY = "test_resnet"


def test_recommended_backbones_exist_in_timm():
    import timm

    assert {"resnet18", "resnet50", "efficientnet_b0", "convnext_tiny", "resnest50d"} <= set(list_backbones())
    assert all(timm.is_model(n) for n in RECOMMENDED_BACKBONES)


def test_hub_weights_are_a_clear_offline_error():
    with pytest.raises(ConfigError, match=r"downloads nothing.*pretrained_path="):
        build_model("nr_iqa", backbone="resnet50", pretrained=True)


def _donor(seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_backbone(TINY).eval()


@pytest.mark.parametrize("wrap", ["plain", "lightning", "dataparallel", "safetensors"])
def test_pretrained_path_round_trip(tmp_path, wrap):
    donor = _donor()
    sd = donor.net.state_dict()
    sd["fc.weight"] = torch.zeros(10, 96)  # a classifier the feature extractor drops
    if wrap == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        path = tmp_path / "w.pth"
        if wrap == "lightning":
            sd = {"state_dict": {f"model.backbone.{k}": v for k, v in sd.items()}, "epoch": 3}
        elif wrap == "dataparallel":
            sd = {f"module.{k}": v for k, v in sd.items()}
        torch.save(sd, path)
    torch.manual_seed(2)  # different random init: equal outputs prove the weights were loaded
    model = build_model("nr_iqa", backbone=TINY, pretrained_path=str(path)).eval()
    report = model.features.backbone.load_report
    assert report.loaded == len(donor.net.state_dict()) and not report.missing and not report.unexpected
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.features.backbone(x), donor(x))
    assert "pretrained_path" not in model.spec.build_kwargs


def test_six_channel_input_conv_adapted_from_rgb_weights(tmp_path):
    donor = _donor()
    path = tmp_path / "w.pth"
    torch.save(donor.net.state_dict(), path)
    model = build_model("fr_iqa", backbone=TINY, fusion="diff6", pretrained_path=str(path))
    report = model.features.backbone.load_report
    assert report.adapted == ["conv1.0.weight"]
    w3 = donor.net.state_dict()["conv1.0.weight"]
    w6 = model.features.backbone.net.state_dict()["conv1.0.weight"]
    assert w6.shape[1] == 6
    # [d, r - d]: the RGB filters on d, zeros on the difference, so the adapted layer starts
    # as the pretrained one on the distorted image (adapt_first_conv)
    torch.testing.assert_close(w6, torch.cat([w3, torch.zeros_like(w3)], dim=1))
    torch.testing.assert_close(
        model.features.backbone.net.state_dict()["layer4.0.conv2.weight"],
        donor.net.state_dict()["layer4.0.conv2.weight"],
    )


def test_tsm_model_loads_plain_weights_and_same_keys(tmp_path):
    donor = _donor()
    path = tmp_path / "w.pth"
    torch.save(donor.net.state_dict(), path)
    tsm = build_model("nr_vqa", backbone=TINY, tsm=True, num_segments=4, pretrained_path=str(path))
    plain = build_model("nr_vqa", backbone=TINY)
    assert list(tsm.state_dict()) == list(plain.state_dict())
    torch.testing.assert_close(
        tsm.features.backbone.net.layer1[0].conv1.weight, donor.net.layer1[0].conv1.weight
    )


def test_mismatched_shapes_are_skipped_and_reported(tmp_path):
    donor = _donor()
    sd = donor.net.state_dict()
    sd["layer4.0.conv2.weight"] = torch.zeros(3, 3, 1, 1)
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    target = create_backbone(TINY)
    report = load_weights(target.net, path)
    assert [m.split()[0] for m in report.mismatched] == ["layer4.0.conv2.weight"]
    assert report.loaded == len(sd) - 1


def test_bad_weight_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_model("nr_iqa", backbone=TINY, pretrained_path=str(tmp_path / "missing.pth"))
    unrelated = tmp_path / "other.pth"
    torch.save({"encoder.blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, unrelated)
    with pytest.raises(ConfigError, match="no tensor .* matches"):
        build_model("nr_iqa", backbone=TINY, pretrained_path=str(unrelated))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read weights file"):
        read_state_dict(garbage)


class _Payload:
    """Pickled objects must never be unpickled from a weights file (weights_only=True)."""

    def __reduce__(self):
        return (print, ("code ran",))


def test_weights_file_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload()}, path)
    with pytest.raises(ConfigError, match="cannot read weights file"):
        read_state_dict(path)

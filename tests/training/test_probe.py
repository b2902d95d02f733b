"""trainer.method=probe: the closed-form ridge head on frozen features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import overrides

from qualitas.errors import ConfigError
from qualitas.io.image import read_image
from qualitas.training.config import load_config
from qualitas.training.probe import ridge
from qualitas.training.run import load_trained, train


def test_ridge_matches_least_squares_and_shrinks():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 5, generator=g, dtype=torch.float64)
    true_w = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    y = z @ true_w + 4.0 + 0.01 * torch.randn(200, generator=g, dtype=torch.float64)
    w, b = ridge(z, y, 1e-9)
    ref = np.linalg.lstsq(np.c_[z.numpy(), np.ones(200)], y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(w.numpy(), ref[:5], atol=1e-6)
    assert b == pytest.approx(ref[5], abs=1e-6)
    w_big, _ = ridge(z, y, 100.0)
    assert w_big.norm() < 0.1 * w.norm()  # the penalty shrinks the weights


def test_ridge_rank_weight_fits_within_group_differences():
    """rank_weight g: the solution of the stacked least squares ``[z; sqrt(g) z_c]`` with the
    within-group centred rows (what makes the fit order each group's rows)."""
    from qualitas.training.probe import centre_within

    g = torch.Generator().manual_seed(1)
    groups = [k // 6 for k in range(120)]  # 20 contents x 6 levels
    content = torch.randn(20, 3, generator=g, dtype=torch.float64)[groups]
    level = torch.randn(120, 3, generator=g, dtype=torch.float64)
    z = torch.cat([content + level, content], dim=1)  # (120, 6)
    within = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    y = level @ within + content @ torch.tensor([3.0, 0.0, -2.0], dtype=torch.float64)
    w, b = ridge(z, y, 1e-9, groups=groups, rank_weight=4.0)
    zc, yc = centre_within(z, groups), centre_within(y, groups)
    stacked = np.r_[np.c_[z.numpy(), np.ones(120)], np.c_[2.0 * zc.numpy(), np.zeros(120)]]
    ref = np.linalg.lstsq(stacked, np.r_[y.numpy(), 2.0 * yc.numpy()], rcond=None)[0]
    np.testing.assert_allclose(w.numpy(), ref[:6], atol=1e-6)
    with pytest.raises(ValueError, match="one group key per row"):
        ridge(z, y, 1.0, rank_weight=1.0)


PROBE = [
    "model.name=nr_iqa",
    "model.backbone=tf_efficientnet_lite0",
    "model.pretrained=true",
    "model.freeze_backbone=true",
    "model.pool=stats",
    "model.hidden=0",
    "trainer.method=probe",
    "data.input_size.mode=none",
]


def test_probe_run_is_a_normal_run(image_data, tmp_path):
    """The fitted network reproduces the probe's own predictions, and eval/export read the run."""
    cfg = load_config(None, overrides(image_data, *PROBE))
    res = train(cfg, out=tmp_path / "run")
    assert res.metrics["method"] == "probe" and res.metrics["probe"]["features"] == 1024
    assert res.metrics["test"]["srocc"] > 0.8  # blur ladders of held-out contents
    model, info = load_trained(res.run_dir)

    rows = [json.loads(line) for line in (res.run_dir / "predictions_test.jsonl").read_text().splitlines()]
    x = torch.stack([read_image(image_data.parent / r["path"]).data for r in rows[:4]])
    with torch.no_grad():
        out = model.eval()(x) * info["score_norm"]["scale"] + info["score_norm"]["shift"]
    np.testing.assert_allclose(out.numpy(), [r["pred"] for r in rows[:4]], rtol=1e-4, atol=1e-4)


def test_probe_stats_nss_fragments_run_exports_with_parity(image_data, tmp_path, capsys):
    """The default models' recipe with scene statistics per fragment: the fit reads 1,024
    stage statistics + the NSS features, and the ONNX export matches eager (``--verify``)."""
    from qualitas.cli.main import main
    from qualitas.models.nss import NSSFeatures

    cfg = load_config(
        None,
        overrides(
            image_data, *PROBE, "model.pool=stats_nss", "model.nss_patch=32",
            "data.input_size.mode=fragments", "data.input_size.grid=2", "data.input_size.patch=32",
            "trainer.probe_rank_weight=3", "trainer.probe_alphas=[0.01]", "model.calibration=logistic",
        ),
    )  # fmt: skip
    res = train(cfg, out=tmp_path / "run")
    assert res.metrics["probe"]["features"] == 1024 + NSSFeatures().num_features
    assert res.metrics["probe"]["rank_weight"] == 3
    assert res.metrics["test"]["srocc"] > 0.8
    out = tmp_path / "export"
    assert main(["export", str(res.run_dir), "--format", "onnx", "--verify", "--out", str(out)]) == 0
    assert "parity" in capsys.readouterr().out.lower()


def test_logistic_calibration_bends_the_same_ridge_read_out(image_data, tmp_path):
    """``model.calibration: logistic``: the head's output is the VQEG logistic of the same ridge
    read-out, fitted on the training rows (ranks unchanged, training squared error no worse)."""
    from qualitas.models.heads import calibration_curve
    from qualitas.training.probe import _parts, fit_calibration

    raw = train(
        load_config(None, overrides(image_data, *PROBE, "trainer.probe_alphas=[1.0]")), out=tmp_path / "raw"
    )
    cfg = load_config(
        None,
        overrides(
            image_data, *PROBE, "trainer.probe_alphas=[1.0]", "model.calibration=logistic",
            f"trainer.probe_features_from={raw.run_dir}",
        ),
    )  # fmt: skip
    res = train(cfg, out=tmp_path / "cal")
    params = torch.tensor(res.metrics["probe"]["calibration"])
    assert params.shape == (7,)
    raw_model, info = load_trained(raw.run_dir)
    cal_model, _ = load_trained(res.run_dir)
    assert torch.equal(raw_model.head.mlp[-1].weight, cal_model.head.mlp[-1].weight)

    def preds(run):
        rows = (run.run_dir / "predictions_test.jsonl").read_text().splitlines()
        p = torch.tensor([json.loads(line)["pred"] for line in rows], dtype=torch.float64)
        return (p - info["score_norm"]["shift"]) / info["score_norm"]["scale"]

    expect = calibration_curve(preds(raw), params.double())
    np.testing.assert_allclose(preds(res).numpy(), expect.numpy(), atol=1e-4)
    assert res.metrics["test"]["srocc"] == pytest.approx(raw.metrics["test"]["srocc"], abs=1e-9)
    # The fit is the least-squares logistic of the training rows' read-out.
    train_rows = torch.load(raw.run_dir / "probe_features.pt", weights_only=True)["features"]["train"]
    bb, _, _ = _parts(raw_model.eval())
    with torch.no_grad():
        out = raw_model.head(bb.stats.norm(train_rows["clips"].float())).double()
    target = train_rows["target"].double()
    bent = calibration_curve(out, params.double())
    refit = calibration_curve(out, fit_calibration(out, target))
    np.testing.assert_allclose(refit.numpy(), bent.numpy(), atol=1e-3)
    assert ((bent - target) ** 2).sum() <= ((out - target) ** 2).sum() + 1e-9


def test_mlp_head_on_cached_features(image_data, tmp_path):
    """A second probe run reuses the first one's features and fits an MLP head on them."""
    first = train(load_config(None, overrides(image_data, *PROBE)), out=tmp_path / "ridge")
    cfg = load_config(
        None,
        overrides(
            image_data, *PROBE, "model.hidden=16", f"trainer.probe_features_from={first.run_dir}",
            "trainer.probe_epochs=60", "trainer.probe_alphas=[0.01]", "optimizer.lr=0.01",
        ),
    )  # fmt: skip
    res = train(cfg, out=tmp_path / "mlp")
    assert res.metrics["test"]["srocc"] > 0.7
    model, info = load_trained(res.run_dir)
    rows = [json.loads(line) for line in (res.run_dir / "predictions_test.jsonl").read_text().splitlines()]
    x = torch.stack([read_image(image_data.parent / r["path"]).data for r in rows[:3]])
    with torch.no_grad():
        out = model.eval()(x) * info["score_norm"]["scale"] + info["score_norm"]["shift"]
    np.testing.assert_allclose(out.numpy(), [r["pred"] for r in rows[:3]], rtol=1e-4, atol=1e-4)
    other = load_config(
        None, overrides(image_data, *PROBE, "model.pool=avg", f"trainer.probe_features_from={first.run_dir}")
    )
    with pytest.raises(ConfigError, match="other data, backbone"):
        train(other, out=tmp_path / "bad")


def test_probe_refuses_models_it_cannot_fit(image_data, tmp_path):
    cfg = load_config(None, overrides(image_data, *PROBE, "model.head=distribution"))
    with pytest.raises(ConfigError, match="head: mlp"):
        train(cfg, out=tmp_path / "a")
    cfg = load_config(None, overrides(image_data, *PROBE, "model.freeze_backbone=false"))
    with pytest.raises(ConfigError, match="freeze_backbone"):
        train(cfg, out=tmp_path / "b")
    cfg = load_config(None, overrides(image_data, *PROBE, "model.hidden=16", "model.calibration=logistic"))
    with pytest.raises(ConfigError, match="calibration: logistic needs a ridge head"):
        train(cfg, out=tmp_path / "c")
    cfg = load_config(
        None, overrides(image_data, *PROBE, "trainer.method=gradient", "model.calibration=logistic")
    )
    with pytest.raises(ConfigError, match="fitted in closed form"):
        train(cfg, out=tmp_path / "d")
    cfg = load_config(
        None, overrides(image_data, *PROBE, "model.head=distribution", "model.calibration=logistic")
    )
    with pytest.raises(ConfigError, match="needs a score head"):
        train(cfg, out=tmp_path / "e")
    cfg = load_config(None, overrides(image_data, *PROBE, "model.calibration=isotonic"))
    with pytest.raises(ConfigError, match="unknown model.calibration"):
        train(cfg, out=tmp_path / "f")
    assert not any((tmp_path / n).exists() for n in "abcdef")


def test_fit_calibration_bends_saturating_targets_and_keeps_lines_straight():
    from qualitas.models.heads import calibration_curve
    from qualitas.training.probe import fit_calibration

    x = torch.linspace(-1.0, 2.0, 200, dtype=torch.float64)
    y = 0.9 * torch.sigmoid((x - 0.4) / 0.2) + 0.05  # saturates at both ends, as VMAF near 100
    params = fit_calibration(x, y)
    assert params[0] > 0.5 and params[3] == 0.0  # a logistic, no linear term
    np.testing.assert_allclose(calibration_curve(x, params).numpy(), y.numpy(), atol=1e-6)
    assert params[5:].tolist() == pytest.approx([float(y.min()), float(y.max())])
    far = calibration_curve(torch.tensor([-100.0, 100.0], dtype=torch.float64), params)
    assert far.tolist() == pytest.approx([float(y.min()), float(y.max())])  # clipped to the targets' range
    line = 0.3 * x + 0.1 + 1e-3 * torch.sin(40 * x)
    params = fit_calibration(x, line)
    assert params[0] == 0.0 and params[3] == pytest.approx(0.3, abs=1e-3)

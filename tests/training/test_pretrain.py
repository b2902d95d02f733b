"""qualitas pretrain / probe: self-supervised pretraining, the clean backbone, linear probes.

Generated images only (crops of scikit-image photos; ladders made with qualitas' own
synthetic distortions). One small CONTRIQUE-style run is shared by the tests of this module.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qualitas.cli.main import main
from qualitas.data.synth import distortions as D
from qualitas.errors import ConfigError, UsageError
from qualitas.models import build_model
from qualitas.training.config import load_config
from qualitas.training.linear_probe import BackboneRef, resolve_backbone, run_probe
from qualitas.training.pretrain import BACKBONE_PREFIX, pretrain

pytest.importorskip("lightly")
pytest.importorskip("pytorch_metric_learning")

TINY = [
    "model.name=nr_iqa",
    "model.backbone=test_resnet",
    "data.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
    "pretrain.hidden_dim=64",
    "pretrain.projection_dim=32",
]


def _crops(names: tuple[str, ...], folder: Path, size: int = 64, per: int = 4) -> list[Path]:
    """``per`` crops of each scikit-image photo (rescaled so a crop shows part of a scene)."""
    from skimage import data, transform

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        img = getattr(data, name)()
        img = np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[..., :3]
        img = transform.rescale(img / 255.0, 2 * size / min(img.shape[:2]), channel_axis=-1)
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        for i in range(per):
            y, x = (i // 2) * (size - 8), (i % 2) * (size - 8)
            path = folder / f"{name}_{i}.png"
            Image.fromarray(np.ascontiguousarray(img[y : y + size, x : x + size])).save(path)
            out.append(path)
    return out


@pytest.fixture(scope="module")
def contrique_run(tmp_path_factory) -> Path:
    """CONTRIQUE-style pretraining: classes pristine / white noise level 2 / level 5."""
    root = tmp_path_factory.mktemp("pretrain")
    _crops(("astronaut", "coffee", "chelsea", "rocket"), root / "unlabelled")
    cfg = load_config(
        None,
        TINY + [
            f"pretrain.source={root / 'unlabelled'}", "pretrain.method=contrique", "pretrain.crop=40",
            "pretrain.distortions=[white_noise]", "pretrain.levels=[2,5]", "data.batch_size=16",
            "trainer.max_epochs=6", "optimizer.lr=0.003", "scheduler.name=constant",
        ],
    )  # fmt: skip
    return pretrain(cfg, out=root / "run").run_dir


def test_pretraining_lowers_its_loss_and_writes_a_clean_backbone(contrique_run):
    m = json.loads((contrique_run / "metrics.json").read_text())
    losses = m["loss_per_epoch"]
    assert len(losses) == 6 and m["data"]["images"] == 16
    assert np.mean(losses[-3:]) < 0.85 * losses[0], losses
    assert (contrique_run / "training_curves.png").is_file()

    sd = torch.load(contrique_run / "backbone.pt", map_location="cpu", weights_only=True)
    net = build_model("nr_iqa", backbone="test_resnet").features.backbone.net
    assert set(sd) == set(net.state_dict())  # backbone only: no projection head, no loss state
    ckpt = torch.load(contrique_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["qualitas"]["kind"] == "pretrain"
    assert any(k.startswith("projection.") for k in ckpt["state_dict"])  # ... which the checkpoint has
    for key, value in sd.items():
        torch.testing.assert_close(value, ckpt["state_dict"][BACKBONE_PREFIX + key])
    # qualitas checkpoint strip on the Lightning checkpoint gives the same clean backbone.
    stripped = contrique_run.parent / "stripped.pt"
    ckpt_path = str(contrique_run / "checkpoints" / "last.ckpt")
    assert main(["checkpoint", "strip", ckpt_path, "--out", str(stripped), "--keep", BACKBONE_PREFIX]) == 0
    again = torch.load(stripped, map_location="cpu", weights_only=True)
    assert set(again) == set(sd) and all(torch.equal(again[k], sd[k]) for k in sd)
    card = json.loads((contrique_run / "backbone.json").read_text())
    assert card["backbone"] == "test_resnet" and card["method"] == "contrique"


def test_clean_backbone_loads_into_downstream_models(contrique_run, tmp_path, caplog):
    sd = torch.load(contrique_run / "backbone.pt", map_location="cpu", weights_only=True)
    model = build_model("nr_iqa", backbone="test_resnet", pretrained_path=str(contrique_run))
    for key, value in model.features.backbone.net.state_dict().items():
        torch.testing.assert_close(value, sd[key])
    fr = build_model("fr_iqa", backbone="test_resnet", pretrained_path=str(contrique_run / "backbone.pt"))
    assert fr.features.backbone.load_report.adapted  # 3 -> 6 input channels, adapted not skipped

    bad = dict(sd)
    key = next(k for k, v in sd.items() if v.ndim == 4 and k != "conv1.0.weight")
    bad[key] = torch.zeros(3, 3, 1, 1)
    torch.save(bad, tmp_path / "bad.pt")
    with caplog.at_level(logging.INFO, logger="qualitas"):
        m2 = build_model("nr_iqa", backbone="test_resnet", pretrained_path=str(tmp_path / "bad.pt"))
    skipped = [r.getMessage() for r in caplog.records if "skipped (shape)" in r.getMessage()]
    assert len(skipped) == 1 and key in skipped[0]
    assert m2.features.backbone.load_report.loaded == len(sd) - 1


def test_resume_continues_a_pretraining_run(contrique_run, tmp_path):
    import shutil

    from qualitas.training.run import config_for_resume

    run = tmp_path / "run"
    shutil.copytree(contrique_run, run)
    before = json.loads((run / "metrics.json").read_text())["loss_per_epoch"]
    cfg = config_for_resume(None, run, ["trainer.max_epochs=7"])
    res = pretrain(cfg, resume=run)  # the run dir is the checkpoint's
    assert res.run_dir == run and res.metrics["epochs"] == 7
    assert len(res.metrics["loss_per_epoch"]) == 1  # only the new epoch ran
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 6 and len(before) == 6
    other = tmp_path / "train.ckpt"  # a quality-training checkpoint is refused
    torch.save({"state_dict": {}, "epoch": 0, "qualitas": {"model": {"name": "nr_iqa"}}}, other)
    with pytest.raises(UsageError, match="not a pretraining checkpoint"):
        pretrain(cfg, resume=other)


def _ladder(root: Path, names: tuple[str, ...]) -> Path:
    """White-noise ladders (levels 0..5) of held-out crops; mos = 100 - 20 * level."""
    rows = []
    for i, path in enumerate(_crops(names, root / "pristine", size=48, per=4)):
        img = np.asarray(Image.open(path).convert("RGB"))
        for level in range(6):
            out = img if level == 0 else D.apply(img, "white_noise", level, seed=i, content=path.stem)
            rel = f"ladder/{path.stem}_{level}.png"
            (root / "ladder").mkdir(exist_ok=True)
            Image.fromarray(out).save(root / rel)
            rows.append({"path": rel, "mos": 100.0 - 20 * level, "group": path.stem, "level": level})
    manifest = root / "ladder.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_linear_probe_separates_a_ladder_better_than_random_init(contrique_run, tmp_path):
    manifest = _ladder(tmp_path, ("camera", "coins", "moon", "hubble_deep_field"))
    o = [
        "data.num_workers=0",
        "trainer.progress_bar=false",
        "data.split_ratios={train: 0.5, val: 0.25, test: 0.25}",
    ]
    pre = run_probe(resolve_backbone(str(contrique_run), pool="avg"), str(manifest), o, out=tmp_path / "p1")
    rnd = run_probe(BackboneRef("test_resnet", pool="avg"), str(manifest), o, out=tmp_path / "p2")
    assert pre["task"] == "quality"
    assert pre["test"]["srocc"] > rnd["test"]["srocc"] + 0.05, (pre["test"], rnd["test"])  # 0.95 vs 0.85 here
    assert pre["test"]["srocc"] > 0.9

    # The ladder's ends as classes (clean vs level-5 noise): top-1 of a ridge on one-hot labels.
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    rows = [r for r in rows if r["level"] in (0, 5)]
    labelled = tmp_path / "classes.jsonl"
    labelled.write_text(
        "".join(
            json.dumps({"path": r["path"], "group": r["group"], "label": "noisy" if r["level"] else "clean"})
            + "\n"
            for r in rows
        )
    )
    cls = run_probe(resolve_backbone(str(contrique_run), pool="avg"), str(labelled), o, out=tmp_path / "p3")
    assert cls["task"] == "classification" and cls["classes"] == ["clean", "noisy"]
    assert cls["test"]["top1"] > 0.8


def test_cli_simclr_on_images_and_video_frames_then_probe(tmp_path, make_video, capsys):
    src = tmp_path / "src"
    _crops(("astronaut", "coffee"), src, per=2)
    video = make_video("clip.mp4", n=8, size=(96, 80))
    video.rename(src / "clip.mp4")
    config = tmp_path / "pretrain.yaml"
    config.write_text("model: {name: nr_iqa, backbone: test_resnet}\npretrain: {method: simclr}\n")
    args = ["pretrain", str(config), "-o", f"pretrain.source={src}", "-o", "pretrain.crop=32", "-o", "pretrain.frames_per_video=4",
            "-o", "trainer.max_epochs=1", "-o", "data.batch_size=8", "--out", str(tmp_path / "run")]  # fmt: skip
    for o in TINY:
        args += ["-o", o]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert '"method": "simclr"' in out
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["data"] == {"images": 4, "videos": 1, "frames": 4, "samples": 8}

    manifest = _ladder(tmp_path, ("camera", "coins"))
    probe = ["probe", str(tmp_path / "run"), "--manifest", str(manifest), "--out", str(tmp_path / "probe"),
             "-o", "data.num_workers=0", "-o", "trainer.progress_bar=false"]  # fmt: skip
    assert main(probe) == 0
    out = capsys.readouterr().out
    assert "val: SROCC" in out and '"task": "quality"' in out


@pytest.mark.parametrize("name", ["pretrain_simclr.yaml", "pretrain_contrique.yaml"])
def test_example_configs_run(name, tmp_path):
    """The shipped configs, made tiny: one epoch on generated images."""
    config = Path(__file__).resolve().parents[2] / "configs" / name
    _crops(("astronaut", "coffee"), tmp_path / "src", per=2)
    o = TINY + [f"pretrain.source={tmp_path / 'src'}", "pretrain.crop=32", "pretrain.distortions=[jpeg]",
                "trainer.max_epochs=1", "data.batch_size=4", "model.pretrained=false"]  # fmt: skip
    res = pretrain(load_config(config, o), out=tmp_path / "run")
    assert res.metrics["epochs"] == 1 and (tmp_path / "run" / "backbone.pt").is_file()


def test_bad_pretrain_configs_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="did you mean 'simclr'"):
        pretrain(load_config(None, TINY + ["pretrain.method=simclrr"]), out=tmp_path / "a")
    with pytest.raises(ConfigError, match="pretrain.source is not set"):
        pretrain(load_config(None, TINY), out=tmp_path / "b")
    with pytest.raises(ConfigError, match="frozen backbone"):
        pretrain(
            load_config(None, TINY + ["model.freeze_backbone=true", f"pretrain.source={tmp_path}"]),
            out=tmp_path / "c",
        )
    assert not (tmp_path / "b").exists()  # no run folder left behind for a run that never started
    config = tmp_path / "pretrain.yaml"
    config.write_text("pretrain: {temperature: 0}\n")
    assert main(["pretrain", str(config)]) == 2
    assert "pretrain.temperature must be > 0" in capsys.readouterr().err

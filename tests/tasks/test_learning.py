"""The tasks learn on this CPU: held-out top-1 >= 0.9 and mIoU >= 0.6 on synthetic shapes,
through the same engine, run folder and checkpoints as quality models."""

from __future__ import annotations

import json

import pytest
from task_helpers import cls_config

from qualitas.errors import ConfigError
from qualitas.training.config import config_from_dict
from qualitas.training.run import load_trained, train


def test_classification_learns(cls_run):
    m = cls_run.metrics
    assert m["test"]["top1"] >= 0.9, m["test"]
    assert m["test"]["n"] == 90 and m["task"] == "classification"
    assert m["classes"] == ["circle", "square", "triangle"]
    cm = m["test"]["confusion"]
    assert sum(map(sum, cm)) == 90 and sum(cm[i][i] for i in range(3)) / 90 == pytest.approx(
        m["test"]["top1"]
    )
    assert len(m["test"]["f1"]) == 3 and m["test"]["support"] == [30, 30, 30]
    run = cls_run.run_dir
    for name in ("config.yaml", "metrics.json", "classes.json", "splits.json", "training_curves.png"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "best.ckpt").is_file() and m["monitor"] == "val/top1"
    model, info = load_trained(run)
    assert info["task"] == "classification" and info["classes"] == m["classes"]
    assert model.spec.output == "classes" and model.spec.build_kwargs["num_classes"] == 3


def test_segmentation_learns(seg_run):
    m = seg_run.metrics
    assert m["test"]["miou"] >= 0.6, {k: v for k, v in m["test"].items() if not isinstance(v, list)}
    assert m["test"]["pixel_acc"] > m["test"]["miou"]
    assert len(m["test"]["iou"]) == 4 and m["monitor"] == "val/miou"
    assert json.loads((seg_run.run_dir / "classes.json").read_text())["classes"][0] == "background"


def test_finetune_skips_the_mismatched_head_and_resume_continues(cls_run, cls_data, tmp_path):
    # Fine-tune the 3-class run on a 2-class list: every weight loads except the classifier layer.
    lines = (cls_data / "train.txt").read_text().splitlines()
    two = [ln for ln in lines if not ln.endswith(" 2")][:64]
    (tmp_path / "train.txt").write_text("\n".join(two) + "\n")
    (tmp_path / "classes.txt").write_text("circle\nsquare\n")
    raw = cls_config(cls_data, tmp_path / "runs", max_epochs=1)
    raw["data"].update(
        train=str(tmp_path / "train.txt"), val=None, test=None, classes=str(tmp_path / "classes.txt")
    )
    raw["data"]["split_ratios"] = {"train": 0.75, "val": 0.25}
    raw["run"]["finetune_from"] = str(cls_run.run_dir)
    (tmp_path / "images").symlink_to(cls_data / "images")
    res = train(config_from_dict(raw), out=tmp_path / "ft")
    report = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert [s.split(":")[0] for s in report["mismatched"]] == ["fc.weight", "fc.bias"]
    assert len(report["loaded"]) > 20 and res.metrics["split_sizes"] == {"train": 48, "val": 16, "test": 0}
    raw["trainer"]["max_epochs"] = 2
    again = train(config_from_dict(raw), resume=tmp_path / "ft")
    assert again.run_dir == tmp_path / "ft" and again.metrics["epochs"] == 2


def test_task_defaults_and_bad_keys():
    cfg = config_from_dict({"task": "segmentation", "data": {"train": "x"}})
    assert cfg.model["name"] == "segmenter" and cfg.loss["name"] == "seg_cross_entropy"
    assert cfg.trainer.monitor == "miou"
    assert config_from_dict({}).task == "quality" and config_from_dict({}).loss == {"name": "l1"}
    with pytest.raises(ConfigError, match="did you mean 'classification'"):
        config_from_dict({"task": "clasification"})
    with pytest.raises(ConfigError, match="did you mean 'data.ignore_index'"):
        config_from_dict({"task": "segmentation", "data": {"ignore_indx": 3}})

"""Every example config in configs/ runs one tiny epoch on generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import overrides

from qualitas.training.config import load_config
from qualitas.training.run import load_trained, train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ONE_EPOCH = ["trainer.max_epochs=1", "data.batch_size=4", "data.input_size.resize_short=0"]
IMG = ["data.input_size.size=[32,32]"]
CLIP = [
    "data.input_size.size=[24,24]",
    "data.sampling.num_frames=4",
    "model.num_segments=4",
    "data.split_ratios={train: 0.5, val: 0.25, test: 0.25}",
]


def test_every_config_is_covered():
    assert {p.name for p in CONFIGS.glob("*.yaml")} == {
        "nr_iqa_koniq.yaml",
        "fr_iqa_kadid.yaml",
        "nr_vqa_konvid_tsm.yaml",
        "rankiqa_pretrain.yaml",
        "rankiqa_finetune.yaml",
        "emd_ava.yaml",
        "importance_faces.yaml",  # exercised by tests/importance/test_dataset_train.py
        "default_nr_image.yaml",
        "default_nr_video.yaml",
        "pretrain_simclr.yaml",  # exercised by tests/training/test_pretrain.py
        "pretrain_contrique.yaml",
        # the task configs: tests/tasks/test_tools.py
        "classification.yaml",
        "classification_list.yaml",
        "segmentation.yaml",
        "importance_seg.yaml",
        "detection.yaml",
        "keypoints.yaml",
    }


def _run(name: str, manifest: Path, out: Path, *extra: str):
    cfg = load_config(CONFIGS / name, overrides(manifest, *ONE_EPOCH, *extra))
    return train(cfg, out=out)


@pytest.mark.slow
def test_nr_iqa_config(image_data, tmp_path):
    res = _run("nr_iqa_koniq.yaml", image_data, tmp_path / "r", *IMG)
    assert res.metrics["val"]["n"] > 0 and res.metrics["dataset"] == "image"


@pytest.mark.slow
def test_fr_iqa_config(image_data, tmp_path):
    res = _run("fr_iqa_kadid.yaml", image_data, tmp_path / "r", *IMG)
    model, info = load_trained(res.run_dir)
    assert info["full_reference"] and model.spec.full_reference
    assert res.metrics["val"]["n"] == 8


@pytest.mark.slow
@pytest.mark.parametrize("frames", [False, True], ids=["video", "frame-folders"])
def test_nr_vqa_tsm_config(video_data, tmp_path, frames):
    manifest = video_data.parent / "frames.jsonl" if frames else video_data
    extra = ["data.dataset=frames"] if frames else []
    res = _run("nr_vqa_konvid_tsm.yaml", manifest, tmp_path / "r", *CLIP, *extra)
    # 4 contents x 4 levels: one content in val, 2 eval clips per video averaged to 4 items.
    assert res.metrics["val"]["n"] == 4
    rows = (res.run_dir / "predictions_val.jsonl").read_text().splitlines()
    assert len(rows) == 4
    _, info = load_trained(res.run_dir)
    assert info["video"] and info["sampling"]["num_frames"] == 4 and info["eval_clips"] == 2


@pytest.mark.slow
def test_rankiqa_pretrain_then_finetune(image_data, tmp_path):
    pre = _run("rankiqa_pretrain.yaml", image_data, tmp_path / "pre", *IMG, "trainer.limit_train_batches=3")
    assert pre.metrics["dataset"] == "pairs" and pre.metrics["val"]["n"] > 0
    fine = _run(
        "rankiqa_finetune.yaml", image_data, tmp_path / "fine", *IMG, f"run.finetune_from={pre.run_dir}"
    )
    report = json.loads((fine.run_dir / "finetune.json").read_text())
    assert report["loaded"] and not report["mismatched"]
    assert "finetune_from" in (fine.run_dir / "train.log").read_text()


@pytest.mark.slow
def test_emd_config_on_vote_histograms(vote_data, tmp_path):
    res = _run("emd_ava.yaml", vote_data, tmp_path / "r", *IMG, "model.num_bins=5")
    model, info = load_trained(res.run_dir)
    assert info["target"] == "votes" and model.spec.output == "distribution"
    assert res.metrics["val"]["n"] == 5


@pytest.mark.slow
def test_default_nr_image_config(image_data, tmp_path):
    """The config that builds the shipped nr-image model runs: frozen pretrained Lite0, stats
    pool, ridge probe on fragments; the probe learns the blur ladder (held-out contents)."""
    res = _run(
        "default_nr_image.yaml", image_data, tmp_path / "r", "model.backbone=tf_efficientnet_lite0", "model.pretrained=true", "model.hidden=0",
        "data.input_size.patch=16", "data.num_workers=0",
    )  # fmt: skip
    model, info = load_trained(res.run_dir)
    assert not info["full_reference"] and not info["video"] and res.metrics["method"] == "probe"
    assert res.metrics["test"]["srocc"] > 0.8


@pytest.mark.slow
def test_default_nr_video_config(video_data, tmp_path):
    """The config that trains the shipped nr-video model runs on decoded clips."""
    res = _run(
        "default_nr_video.yaml", video_data, tmp_path / "r", "model.backbone=tf_efficientnet_lite0", "model.pretrained=true", "model.hidden=0",
        "data.input_size.patch=16", "data.num_workers=0",
        "data.split_ratios={train: 0.5, val: 0.25, test: 0.25}",
    )  # fmt: skip
    _, info = load_trained(res.run_dir)
    assert info["video"] and info["sampling"]["num_frames"] == 4 and res.metrics["val"]["n"] > 0
    assert info["eval_clips"] == 4


PRETRAINED_CONFIGS = (
    "nr_iqa_koniq.yaml",
    "fr_iqa_kadid.yaml",
    "nr_vqa_konvid_tsm.yaml",
    "rankiqa_pretrain.yaml",
    "rankiqa_finetune.yaml",
    "emd_ava.yaml",
    "default_nr_image.yaml",
    "default_nr_video.yaml",
)


@pytest.mark.parametrize("name", PRETRAINED_CONFIGS)
def test_configs_start_from_offline_pretrained_weights(name):
    """The example configs build their model from the ImageNet EfficientNet-Lite0 weights."""
    from qualitas.models import build_model

    cfg = load_config(CONFIGS / name, [])
    assert cfg.model["backbone"] == "tf_efficientnet_lite0" and cfg.model["pretrained"] is True
    model = build_model(cfg.model["name"], **cfg.model_kwargs)
    report = model.features.backbone.load_report
    assert report is not None and report.loaded >= 240 and not report.missing

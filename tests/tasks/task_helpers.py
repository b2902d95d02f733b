"""Config builders shared by the task tests."""

from __future__ import annotations

from pathlib import Path


def cls_config(root: Path, out: Path, **trainer) -> dict:
    return {
        "task": "classification",
        "run": {"name": "shapes_cls", "out": str(out)},
        "model": {"name": "classifier", "backbone": "test_resnet"},
        "data": {
            "format": "list",
            "train": str(root / "train.txt"),
            "val": str(root / "val.txt"),
            "test": str(root / "test.txt"),
            "classes": str(root / "classes.txt"),
            "batch_size": 16,
            "num_workers": 0,
            "augment": "none",
        },
        "loss": {"name": "cross_entropy", "label_smoothing": 0.1},
        "optimizer": {"lr": 3e-3, "weight_decay": 0.01},
        "scheduler": {"warmup_epochs": 0.3},
        "trainer": {"max_epochs": 5, "progress_bar": False, **trainer},
    }


def seg_config(root: Path, out: Path, **trainer) -> dict:
    return {
        "task": "segmentation",
        "run": {"name": "shapes_seg", "out": str(out)},
        "model": {"name": "segmenter", "backbone": "test_resnet", "head": "lraspp"},
        "data": {
            "format": "folders",
            "train": str(root / "train"),
            "val": str(root / "val"),
            "test": str(root / "test"),
            "classes": str(root / "classes.txt"),
            "palette": str(root / "palette.txt"),
            "batch_size": 16,
            "num_workers": 0,
            "augment": "none",
        },
        "optimizer": {"lr": 3e-3},
        "trainer": {"max_epochs": 12, "progress_bar": False, **trainer},
    }


def det_config(root: Path, out: Path, *, keypoints: bool = False, **trainer) -> dict:
    """A small FCOS (or Keypoint R-CNN) on the pretrained EfficientNet-Lite0, COCO layout of
    :func:`qualitas.data.synth.shapes.write_detection`."""
    prefix = "person_keypoints" if keypoints else "instances"
    data = {
        "format": "coco",
        "train": str(root / "annotations" / f"{prefix}_train.json"),
        "val": str(root / "annotations" / f"{prefix}_val.json"),
        "root": str(root / "images" / "{split}"),
        "batch_size": 6,
        "num_workers": 0,
        "augment": "basic",
    }
    if (root / "annotations" / f"{prefix}_test.json").is_file():
        data["test"] = str(root / "annotations" / f"{prefix}_test.json")
    model = {"name": "detector", "arch": "keypoint_rcnn" if keypoints else "fcos", "pretrained": True}
    model.update(min_size=96, max_size=96, fpn_channels=64)
    if keypoints:
        data["flip_pairs"] = [[0, 1], [2, 3]]
        model.update(proposals=150, roi_samples=128, keypoint_channels=128, keypoint_layers=4)
    return {
        "task": "keypoints" if keypoints else "detection",
        "run": {"name": "shapes_kp" if keypoints else "shapes_det", "out": str(out)},
        "model": model,
        "data": data,
        "optimizer": {"lr": 2e-3, "weight_decay": 1e-4},
        "scheduler": {"warmup_epochs": 0.1},
        "trainer": {"max_epochs": 1, "progress_bar": False, **trainer},
    }

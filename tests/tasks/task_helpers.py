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

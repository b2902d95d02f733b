"""Fixtures of the classification/segmentation tests: synthetic shapes datasets in the
official layouts and one trained run per task (shared by the learning, eval, predict and
export tests so that each network trains once)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from task_helpers import cls_config, seg_config

from qualitas.data.synth.shapes import write_classification, write_segmentation
from qualitas.training.config import config_from_dict
from qualitas.training.run import train


@pytest.fixture(autouse=True)
def one_thread():
    # Two cores shared by several jobs: one intra-op thread is ~10x faster than two here.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="session")
def cls_data(tmp_path_factory) -> Path:
    """900/90/90 32x32 shape images (list layout: images/, train.txt ..., classes.txt)."""
    return write_classification(
        tmp_path_factory.mktemp("shapes_cls"), {"train": 900, "val": 90, "test": 90}, size=32, layout="list"
    )


@pytest.fixture(scope="session")
def seg_data(tmp_path_factory) -> Path:
    """400/40/40 48x48 images with masks (folders layout, JPEG images, PNG masks)."""
    return write_segmentation(
        tmp_path_factory.mktemp("shapes_seg"), {"train": 400, "val": 40, "test": 40}, size=48, seed=1
    )


@pytest.fixture(scope="session")
def cls_run(cls_data, tmp_path_factory):
    torch.set_num_threads(1)
    return train(config_from_dict(cls_config(cls_data, tmp_path_factory.mktemp("runs"))))


@pytest.fixture(scope="session")
def seg_run(seg_data, tmp_path_factory):
    torch.set_num_threads(1)
    return train(config_from_dict(seg_config(seg_data, tmp_path_factory.mktemp("runs"))))

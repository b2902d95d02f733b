"""Fixtures for the training tests: tiny generated datasets (see train_helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import CONTENTS, make_image_dataset, make_video_dataset


@pytest.fixture(scope="session")
def image_data(tmp_path_factory) -> Path:
    """Manifest of 5 contents x 8 blur levels, 48x48 (NR and FR: rows carry ``ref``)."""
    return make_image_dataset(tmp_path_factory.mktemp("blur_images"))


@pytest.fixture(scope="session")
def vote_data(tmp_path_factory) -> Path:
    return make_image_dataset(
        tmp_path_factory.mktemp("blur_votes"), contents=CONTENTS[:4], levels=5, votes=True
    )


@pytest.fixture(scope="session")
def video_data(tmp_path_factory) -> Path:
    """Manifest of 4 contents x 4 levels of 12-frame 32x32 videos (+ frames.jsonl for folders)."""
    return make_video_dataset(tmp_path_factory.mktemp("blur_videos"))


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the 2 shared cores thrash with more (10x slower steps)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Shared test fixtures: tiny media made by the tests themselves (no ../shared, no network)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media_helpers import write_video


def scene_frames(n: int, width: int = 192, height: int = 176, seed: int = 0) -> np.ndarray:
    """``n`` RGB uint8 frames (n, H, W, 3): a pan across scikit-image's astronaut photo."""
    from skimage import data

    img = data.astronaut()  # 512x512x3 uint8, real content
    frames = []
    for i in range(n):
        x = min(img.shape[1] - width, 3 * i + seed)
        y = min(img.shape[0] - height, 2 * i)
        frames.append(img[y : y + height, x : x + width])
    return np.ascontiguousarray(np.stack(frames))


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_video("name.mp4", n=8, size=(192, 176), fps=25, crf=18, seed=0, faststart=False)``."""

    def make(
        name: str,
        n: int = 8,
        size: tuple[int, int] = (192, 176),
        fps: int = 25,
        crf: int = 18,
        seed: int = 0,
        faststart: bool = False,
    ) -> Path:
        frames = scene_frames(n, size[0], size[1], seed)
        return write_video(tmp_path / name, frames, fps, crf=crf, faststart=faststart)

    return make


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_image("name.png", size=(192, 176), noise=0.0, seed=0)`` (astronaut crop)."""
    from PIL import Image

    def make(name: str, size: tuple[int, int] = (192, 176), noise: float = 0.0, seed: int = 0) -> Path:
        arr = scene_frames(1, size[0], size[1], seed)[0].astype(np.float64)
        if noise:
            arr += np.random.default_rng(seed).normal(0.0, noise, arr.shape)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8)).save(path)
        return path

    return make

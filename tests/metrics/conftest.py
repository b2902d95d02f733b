"""Fixtures for the metric tests: calibration pairs and a small x264 clip pair, made here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from media_helpers import write_video

REFERENCE_DIR = Path(__file__).parent / "reference_values"


def _load_recipes() -> ModuleType:
    # The calibration recipe lives beside the reference values it produced.
    name = "qualitas_test_reference_recipes"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REFERENCE_DIR / "make_reference_values.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def recipes() -> ModuleType:
    return _load_recipes()


@pytest.fixture(scope="session")
def ssim_reference() -> dict:
    return json.loads((REFERENCE_DIR / "ssim_reference.json").read_text())


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H,W) gray or (H,W,3) RGB -> float32 (1,3,H,W) in [0,1] (gray replicated)."""
    x = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True)) / 255.0
    x = x[None].expand(3, -1, -1) if x.dim() == 2 else x.permute(2, 0, 1)
    return x[None].contiguous()


def pan_frames(n: int, width: int = 320, height: int = 240) -> np.ndarray:
    """(n, H, W, 3) uint8: a camera pan across skimage's astronaut (real content, motion)."""
    from skimage import data

    img = data.astronaut()
    out = []
    for i in range(n):
        x = min(img.shape[1] - width, 2 * i)
        y = min(img.shape[0] - height, i)
        out.append(img[y : y + height, x : x + width])
    return np.ascontiguousarray(np.stack(out))


def encode(path: Path, frames: np.ndarray, crf: int, fps: int = 25) -> Path:
    """x264 (yuv420p) encode of RGB uint8 frames with PyAV."""
    return write_video(path, frames, fps, crf=crf)


@pytest.fixture
def make_clip(tmp_path: Path):
    """Factory: ``make_clip("name.mp4", n=6, width=160, height=128, crf=20)`` -> path of an x264 pan."""

    def make(name: str, n: int = 6, width: int = 160, height: int = 128, crf: int = 20) -> Path:
        return encode(tmp_path / name, pan_frames(n, width, height), crf=crf)

    return make


@pytest.fixture(scope="session")
def as_tensor():
    """The :func:`to_tensor` converter, for tests."""
    return to_tensor


@pytest.fixture(scope="session")
def x264_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dist, ref): a 64-frame 320x240 pan, reference at CRF 12 and distorted at CRF 38."""
    root = tmp_path_factory.mktemp("vmaf")
    frames = pan_frames(64)
    ref = encode(root / "ref.mp4", frames, crf=12)
    dist = encode(root / "dist.mp4", frames, crf=38)
    return dist, ref

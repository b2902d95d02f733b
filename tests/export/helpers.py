"""Fixtures for export/runtime tests: checkpoints in the training format, tiny media.

``make_checkpoint`` writes what ``qualitas train`` writes (``checkpoints/best.ckpt`` with
the network under ``state_dict`` as ``model.*`` and the run info under ``qualitas``) for
a freshly built tiny model, so every architecture can be tested without training it.
``tests/export/conftest.py`` also trains one real run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from media_helpers import write_video
from qualitas.models import build_model


def make_checkpoint(
    root: Path,
    arch: str,
    *,
    input_size: dict | None = None,
    sampling: dict | None = None,
    eval_clips: int = 1,
    score_norm: dict | None = None,
    seed: int = 0,
    **kwargs,
) -> Path:
    """``root/checkpoints/best.ckpt`` + ``config.yaml`` + ``metrics.json`` for ``arch``; returns ``root``."""
    torch.manual_seed(seed)
    model = build_model(arch, backbone="test_resnet", hidden=8, **kwargs).eval()
    # Non-trivial weights everywhere (timm zero-initialises some BatchNorm scales).
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point and ("bn" in name or "norm" in name) and name.endswith("weight"):
                t.uniform_(0.5, 1.5)
            if t.dtype.is_floating_point and name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
    spec = model.spec
    info = {
        "model": {"name": arch, "kwargs": kwargs},
        "spec": spec.to_dict(),
        "score_norm": score_norm or {"kind": "minmax", "shift": 1.0, "scale": 4.0},
        "input_size": input_size or {"mode": "resize", "size": [64, 64]},
        "sampling": sampling or {"mode": "uniform", "num_frames": spec.num_frames or 4, "step": 1},
        "eval_clips": eval_clips,
        "full_reference": spec.full_reference,
        "video": spec.video,
        "target": "mos",
        "dataset": "video" if spec.video else "image",
        "higher_is_better": True,
        "score_range": [1.0, 5.0],
        "config": {"run": {"name": f"tiny_{arch}"}},
    }
    ckpt = {
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "qualitas": info,
        "epoch": 3,
    }
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, root / "checkpoints" / "best.ckpt")
    (root / "config.yaml").write_text(f"run: {{name: tiny_{arch}}}\n")
    (root / "metrics.json").write_text(
        '{"val": {"srocc": 0.91, "plcc": 0.93, "n": 8}, "test": {"srocc": 0.88, "plcc": 0.9, "n": 8}}'
    )
    return root


def photo(size: int = 64, name: str = "astronaut") -> np.ndarray:
    """(size, size, 3) uint8 crop of a scikit-image sample photo."""
    from skimage import data, transform

    img = getattr(data, name)()[..., :3]
    img = transform.resize(img, (size * 2, size * 2), anti_aliasing=True)
    return (img[size // 2 : size // 2 + size, size // 2 : size // 2 + size] * 255 + 0.5).astype(np.uint8)


def save_png(arr: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_clip(path: Path, frames: int = 12, size: int = 32, fps: int = 10) -> Path:
    """A short mpeg4 clip panning over a photo (real content, real motion)."""
    big = photo(size + 2 * frames, "coffee")
    pan = np.stack([big[2 * i : 2 * i + size, 2 * i : 2 * i + size] for i in range(frames)])
    return write_video(path, np.ascontiguousarray(pan), fps, codec="mpeg4", options={"qscale": "2"})

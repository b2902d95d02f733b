"""Tiny generated datasets whose score is a known function of a distortion.

Photos from scikit-image (real content), cropped small; gaussian blur of increasing
strength; MOS = 5 - 0.5 * level (so level 0 is best). Everything is written under a
session temp dir; nothing from outside the test run is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from media_helpers import write_video

CONTENTS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
LEVELS = 8


def _photo(name: str, size: int) -> np.ndarray:
    from skimage import data, transform

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3].astype(np.float64) / 255.0
    # Shrink so a small crop still shows a real scene, then take the centre.
    scale = (2.0 * size) / min(img.shape[:2])
    img = transform.rescale(img, scale, channel_axis=-1, anti_aliasing=True)
    h, w = img.shape[:2]
    t, left = (h - size) // 2, (w - size) // 2
    return img[t : t + size, left : left + size]


def blur(img: np.ndarray, level: int) -> np.ndarray:
    return img if level == 0 else gaussian_filter(img, sigma=(0.6 * level, 0.6 * level, 0))


def _save(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def mos_of(level: int) -> float:
    return 5.0 - 0.5 * level


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_image_dataset(
    root: Path, *, contents=CONTENTS, levels: int = LEVELS, size: int = 48, votes: bool = False
) -> Path:
    """NR/FR images: ``ref/<c>.png`` and ``dist/<c>_<level>.png``; manifest rows have ref+group."""
    rows = []
    for c in contents:
        img = _photo(c, size)
        _save(img, root / "ref" / f"{c}.png")
        for lv in range(levels):
            _save(blur(img, lv), root / "dist" / f"{c}_{lv}.png")
            row = {
                "path": f"dist/{c}_{lv}.png",
                "ref": f"ref/{c}.png",
                "mos": mos_of(lv),
                "group": c,
                "dist_level": lv,
            }
            if votes:  # 5-bin histogram centred on the MOS
                m = mos_of(lv)
                row["votes"] = [
                    round(10 * float(np.exp(-((b - m) ** 2)))) + (1 if b == round(m) else 0)
                    for b in range(1, 6)
                ]
                row.pop("mos")
            rows.append(row)
    return write_jsonl(rows, root / "manifest.jsonl")


def _write_video(path: Path, frames: np.ndarray, fps: int = 10) -> None:
    write_video(path, frames, fps, codec="mpeg4", options={"qscale": "2"})


def make_video_dataset(
    root: Path,
    *,
    contents=CONTENTS[:4],
    levels: int = 4,
    size: int = 32,
    num_frames: int = 12,
    frames_too: bool = True,
) -> Path:
    """Short videos (a pan over a photo) blurred per level; optional pre-extracted frame folders."""
    rows = []
    for c in contents:
        big = _photo(c, size + num_frames)
        for lv in range(levels):
            clip = np.stack([blur(big[i : i + size, i : i + size], lv) for i in range(num_frames)])
            u8 = (np.clip(clip, 0, 1) * 255 + 0.5).astype(np.uint8)
            _write_video(root / "videos" / f"{c}_{lv}.mp4", u8)
            if frames_too:
                for i, f in enumerate(u8):
                    _save(f.astype(np.float64) / 255, root / "frames" / f"{c}_{lv}" / f"{i:04d}.png")
            rows.append({"path": f"videos/{c}_{lv}.mp4", "mos": mos_of(2 * lv), "group": c})
    manifest = write_jsonl(rows, root / "manifest.jsonl")
    if frames_too:
        write_jsonl(
            [{**r, "path": r["path"].replace("videos/", "frames/").replace(".mp4", "")} for r in rows],
            root / "frames.jsonl",
        )
    return manifest


TINY = [
    "model.backbone=test_resnet",
    "model.pretrained=false",
    "model.hidden=16",
    "data.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
]
"""Overrides that make any config tiny: 0.4M-parameter random-init backbone, no workers, CPU."""


def overrides(manifest: Path, *extra: str) -> list[str]:
    """TINY plus the manifest (root: its folder) and small inputs."""
    return TINY + [f"data.manifest={manifest}", "data.root=null", *extra]

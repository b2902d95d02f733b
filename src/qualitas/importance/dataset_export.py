"""Export importance labels as a segmentation dataset (and a qualitas training manifest).

Layout written under ``out``::

    images/<stem>.png     the low-resolution frames that were labelled
    labels/<stem>.png     8-bit class maps (K bins, see grid.quantise), nearest-upsampled
                          from the block grid to the image size (value = class index)
    grids/<stem>.npy      float32 (gh, gw) max-normalised importance (for regression)
    train.txt val.txt test.txt   one "images/<stem>.png labels/<stem>.png" line per frame
    manifest.jsonl        qualitas rows {path, grid, block, mos (objective gain), group, split}
                          for ``qualitas train`` with ``data.dataset: importance``
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qualitas.data.manifest import resolve_under
from qualitas.data.splits import DEFAULT_RATIOS
from qualitas.errors import UsageError
from qualitas.files import atomic_write_text
from qualitas.functional.blocks import blocks_to_pixels, normalise
from qualitas.importance.label import LabelSet

SPLITS = ("train", "val", "test")


def split_groups(groups: list[str], ratios: dict[str, float], seed: int = 0) -> list[str]:
    """Assign each item a split by its group (frames of one source stay together), seeded."""
    uniq = sorted(set(groups))
    order = [
        uniq[i] for i in torch.randperm(len(uniq), generator=torch.Generator().manual_seed(seed)).tolist()
    ]
    total = sum(ratios.get(s, 0.0) for s in SPLITS)
    if total <= 0:
        raise UsageError("split ratios must sum to more than 0")
    bounds, acc = [], 0.0
    for s in SPLITS:
        acc += ratios.get(s, 0.0) / total
        bounds.append(round(acc * len(order)))
    of = {}
    for i, g in enumerate(order):
        of[g] = next(s for s, b in zip(SPLITS, bounds) if i < b) if i < bounds[-1] else "train"
    return [of[g] for g in groups]


def export_dataset(
    label_dir: str | Path,
    out: str | Path,
    *,
    ratios: dict[str, float] | None = None,
    seed: int = 0,
) -> dict[str, int]:
    """Write the dataset described above from a ``qualitas importance label`` folder.

    Returns the number of frames per split.
    """
    src, dst = Path(label_dir), Path(out)
    labels = LabelSet.load(src)
    ratios = ratios or dict(DEFAULT_RATIOS)
    groups = list(labels.meta.get("groups") or labels.frames)
    splits = split_groups(groups, ratios, seed)
    for sub in ("images", "labels", "grids"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    # Class bins and regression targets are always max-normalised (whatever labels.norm).
    norm = [normalise(torch.from_numpy(r), "max").numpy() for r in labels.raw]
    classes = labels.classes
    lists: dict[str, list[str]] = {s: [] for s in SPLITS}
    rows = []
    gains = [e - c for e, c in zip(labels.objective_enhanced, labels.objective_cheap)] or [0.0] * len(
        labels.frames
    )
    for i, rel in enumerate(labels.frames):
        image = resolve_under(src, rel)
        if not image.is_file():
            raise UsageError(f"{src}: labelled frame {rel} is missing")
        stem = Path(rel).stem  # frames/ is flat: stems are unique
        shutil.copyfile(image, dst / "images" / f"{stem}.png")
        with Image.open(image) as im:
            w, h = im.size
        block = -(-h // classes[i].shape[0])
        cls = blocks_to_pixels(torch.from_numpy(classes[i]), block, h, w).numpy().astype(np.uint8)
        Image.fromarray(cls, mode="L").save(dst / "labels" / f"{stem}.png")
        np.save(dst / "grids" / f"{stem}.npy", norm[i].astype(np.float32))
        lists[splits[i]].append(f"images/{stem}.png labels/{stem}.png")
        rows.append(
            {
                "path": f"images/{stem}.png",
                "grid": f"grids/{stem}.npy",
                "block": labels.block,
                "mos": float(gains[i]),
                "group": groups[i],
                "split": splits[i],
            }
        )
    for s in SPLITS:
        atomic_write_text(dst / f"{s}.txt", "".join(line + "\n" for line in lists[s]))
    atomic_write_text(dst / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(
        dst / "classes.json",
        json.dumps({"k": labels.k, "bins": "class = min(floor(v * k), k - 1), v = importance / frame max"}),
    )
    return {s: len(v) for s, v in lists.items()}

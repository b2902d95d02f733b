"""Detection and keypoint samples for training (``task: detection | keypoints``, docs/tasks.md).

A split is read by :mod:`qualitas.data.detection` (COCO JSON, Pascal VOC, YOLO) into a
:class:`~qualitas.data.detection.DetectionSet`; :class:`DetectionDataset` turns each image
into what torchvision's detectors train on: ``{"input": (3, H, W) float in [0, 1],
"target": {"boxes": (N, 4) xyxy px, "labels": (N,) int64 1..K[, "keypoints": (N, P, 3)]},
"index"}`` and :func:`collate_detection` keeps the variable box counts as lists.

Category ids of the files (COCO ids may be any integers) become contiguous labels 1..K in
sorted id order (:class:`LabelMap`); 0 is the detectors' background. Crowd boxes are left
out of training targets (torchvision's losses have no notion of them) and kept for the
evaluation, where COCO ignores them.

Augmentation (training split only) uses torchvision's v2 transforms on ``tv_tensors``, so
boxes move with the image: ``basic`` = horizontal flip (p = 0.5), ``color`` = flip + colour
jitter. Keypoints are flipped in continuous coordinates (``x -> W - x``, as the boxes; v2's
``horizontal_flip`` maps keypoints by pixel index, ``W - 1 - x``), and with ``flip_pairs``
the left/right keypoints swap names. A keypoint set without ``flip_pairs`` is not flipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from qualitas.data.datasets import DataError
from qualitas.data.detection import DetectionSet, DetImage
from qualitas.errors import ConfigError
from qualitas.io.image import read_image

log = logging.getLogger("qualitas.data")

DET_AUGMENTS = ("none", "basic", "color")


@dataclass(frozen=True)
class LabelMap:
    """Dataset category ids <-> model labels 1..K (sorted ids) and the class names."""

    category_ids: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def of(cls, ds: DetectionSet) -> LabelMap:
        ids = tuple(sorted(ds.categories))
        if not ids:
            raise DataError("the training annotations define no categories")
        return cls(ids, tuple(ds.categories[i] for i in ids))

    def label(self, category: int) -> int:
        return self.category_ids.index(category) + 1

    def category(self, label: int) -> int:
        return self.category_ids[int(label) - 1]

    @property
    def num_classes(self) -> int:
        """Classes plus the background (what the detectors call ``num_classes``)."""
        return len(self.category_ids) + 1


def check_same_categories(train: DetectionSet, other: DetectionSet, where: str) -> None:
    """Every split names its categories as the training split does (same id, same name)."""
    for cid, name in other.categories.items():
        if train.categories.get(cid) != name:
            raise DataError(
                f"{where}: category {cid} {name!r} differs from the training split's "
                f"({train.categories.get(cid)!r}); every split must use the same categories"
            )


def flip_permutation(num_keypoints: int, pairs: Sequence[Sequence[int]] | None) -> list[int] | None:
    """Index of each keypoint after a horizontal flip (``pairs``: 0-based ``[left, right]``)."""
    if not pairs:
        return None
    perm = list(range(num_keypoints))
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(v, int) and 0 <= v < num_keypoints for v in pair):
            raise ConfigError(
                f"data.flip_pairs entries are [left, right] keypoint indices in 0..{num_keypoints - 1}, got {pair!r}"
            )
        a, b = pair
        perm[a], perm[b] = b, a
    return perm


class DetectionTransform:
    """``(image, boxes, keypoints|None) -> (image, boxes, keypoints|None)`` with v2 transforms."""

    def __init__(self, augment: str, *, flip_perm: list[int] | None, keypoints: bool) -> None:
        if augment not in DET_AUGMENTS:
            raise ConfigError(
                f"data.augment '{augment}' is not a detection augmentation; choose one of {', '.join(DET_AUGMENTS)}"
            )
        self.flip = augment in ("basic", "color") and (not keypoints or flip_perm is not None)
        self.flip_perm = flip_perm
        self.color = None
        if augment == "color":
            from torchvision.transforms import v2

            self.color = v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03)

    def __call__(
        self, image: torch.Tensor, boxes: torch.Tensor, keypoints: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        h, w = image.shape[-2:]
        if self.flip and torch.rand(()) < 0.5:
            image = F.horizontal_flip(tv_tensors.Image(image)).as_subclass(torch.Tensor)
            bb = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(int(h), int(w)))
            boxes = F.horizontal_flip(bb).as_subclass(torch.Tensor)
            if keypoints is not None:
                keypoints = keypoints.clone()
                keypoints[..., 0] = float(w) - keypoints[..., 0]
                if self.flip_perm is not None:
                    keypoints = keypoints[:, self.flip_perm]
        if self.color is not None:
            image = self.color(tv_tensors.Image(image)).as_subclass(torch.Tensor)
        return image, boxes, keypoints


class DetectionDataset(Dataset):
    """Images of a :class:`DetectionSet` under ``root`` with their training targets."""

    def __init__(
        self,
        images: Sequence[DetImage],
        root: Path,
        labels: LabelMap,
        *,
        num_keypoints: int = 0,
        transform: Callable | None = None,
    ) -> None:
        self.images = list(images)
        self.root = Path(root)
        self.labels = labels
        self.num_keypoints = num_keypoints
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    @property
    def paths(self) -> list[str]:
        return [str(self.root / im.file) for im in self.images]

    def target(self, im: DetImage) -> dict[str, torch.Tensor]:
        """Training target of one image (crowd boxes left out)."""
        kept = [b for b in im.boxes if not b.iscrowd]
        boxes = torch.tensor([[b.x1, b.y1, b.x2, b.y2] for b in kept], dtype=torch.float32).reshape(-1, 4)
        out = {
            "boxes": boxes,
            "labels": torch.tensor([self.labels.label(b.category) for b in kept], dtype=torch.int64),
        }
        if self.num_keypoints:
            k = self.num_keypoints
            kp = [list(b.keypoints) if b.keypoints else [0.0] * (3 * k) for b in kept]
            out["keypoints"] = torch.tensor(kp, dtype=torch.float32).reshape(-1, k, 3)
        return out

    def __getitem__(self, index: int) -> dict:
        im = self.images[index]
        x = read_image(self.root / im.file).data
        if tuple(x.shape[-2:]) != (im.height, im.width):
            raise DataError(
                f"{self.root / im.file}: image is {x.shape[-1]}x{x.shape[-2]}, annotation says {im.width}x{im.height}"
            )
        t = self.target(im)
        if self.transform is not None:
            kp = t.get("keypoints")
            x, t["boxes"], kp = self.transform(x, t["boxes"], kp)
            if kp is not None:
                t["keypoints"] = kp
        return {"input": x.contiguous(), "target": t, "index": index}


def collate_detection(batch: list[dict]) -> dict:
    """Lists of images and targets (detectors take variable sizes and box counts)."""
    return {
        "input": [b["input"] for b in batch],
        "target": [b["target"] for b in batch],
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
        "size": len(batch),
        "skipped": 0,
    }

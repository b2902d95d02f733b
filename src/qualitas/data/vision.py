"""Classification and segmentation datasets: the format readers and the torch datasets.

Why this file is long: five on-disk layouts (class folders, label lists, multi-label lists,
image/mask folders, PaddleSeg lists) and the two datasets that read them share one set of
line-numbered error helpers; splitting readers from datasets would export those helpers.

Formats (docs/tasks.md):

- classification ``folders``: ``root/<class name>/<image>`` (ImageFolder layout; classes are
  the sorted folder names unless ``classes`` names them).
- classification ``list``: one ``path label`` line per image (ObjectiveMTL / ImageNet
  ``train.txt`` style), ``label`` a class index or a class name; with a class-names file
  (one name per line).
- classification ``multilabel``: ``path l1 l2 ...`` (or ``path l1,l2``): every label of the image.
- segmentation ``folders``: ``images/`` and ``masks/`` (or ``labels/``, ``annotations/``)
  matched by file stem (extensions may differ).
- segmentation ``list``: the PaddleSeg / RegenHance list, ``origin_images/x.jpg labels/x.png``
  per line, paths relative to the list's folder.

Masks are read as stored (PIL, no resampling): a single-channel or palette PNG holds class
indices; an RGB mask is mapped through the palette. ``ignore_index`` (255) marks pixels no
loss or metric counts. Every reader error is one line naming the file (and line).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from qualitas.data.datasets import DataError
from qualitas.errors import ConfigError
from qualitas.io.image import IMAGE_EXTENSIONS, read_image

log = logging.getLogger("qualitas.data")

CLASSIFICATION_FORMATS = ("folders", "list", "multilabel")
SEGMENTATION_FORMATS = ("folders", "list")
MASK_FOLDERS = ("masks", "labels", "annotations", "label", "mask")
IMAGE_FOLDERS = ("images", "origin_images", "img", "imgs", "image")


@dataclass(frozen=True)
class ClassSample:
    """One classification item: image path and label indices (one, or several for multi-label)."""

    path: Path
    labels: tuple[int, ...]
    where: str
    """``file:line`` (list formats) or the path itself, for error messages."""


@dataclass(frozen=True)
class SegSample:
    image: Path
    mask: Path
    where: str


@dataclass
class VisionData:
    """Samples of one split plus the class names (and palette) they refer to."""

    samples: list
    classes: list[str]
    palette: list[tuple[int, int, int]] = field(default_factory=list)


# --------------------------------------------------------------------------- small files


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """Non-empty, non-comment lines of a text file as ``(line number, text)``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{p}: unreadable ({err})") from None
    out = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)]
    return [(i, t) for i, t in out if t and not t.startswith("#")]


def read_class_names(spec: str | Path | Sequence[str] | None) -> list[str] | None:
    """Class names from a file (one per line; ``index name`` lines accepted) or a list."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        names = [str(n) for n in spec]
    else:
        names = []
        for i, line in read_lines(spec):
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0].isdigit():
                if int(parts[0]) != len(names):
                    raise DataError(
                        f"{spec}:{i}: class index {parts[0]} out of order (expected {len(names)})"
                    )
                names.append(parts[1].strip())
            else:
                names.append(line)
    if not names:
        raise DataError(f"{spec}: no class names")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{spec}: class name '{dup}' appears twice")
    return names


def read_palette(spec: str | Path | Sequence | None, n: int) -> list[tuple[int, int, int]]:
    """``n`` RGB colours: from a file (``r g b`` per line), a list, or a fixed default."""
    if spec is None:
        return default_palette(n)
    rows: list[tuple[int, list[str]]]
    if isinstance(spec, (list, tuple)):
        rows = [(i + 1, [str(v) for v in c]) for i, c in enumerate(spec)]
        where = "data.palette"
    else:
        rows = [(i, line.replace(",", " ").split()) for i, line in read_lines(spec)]
        where = str(spec)
    out = []
    for i, vals in rows:
        try:
            rgb = tuple(int(v) for v in vals)
        except ValueError:
            raise DataError(
                f"{where}:{i}: a colour is three integers 0..255, got {' '.join(vals)!r}"
            ) from None
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise DataError(f"{where}:{i}: a colour is three integers 0..255, got {' '.join(vals)!r}")
        out.append(rgb)
    if len(out) < n:
        raise DataError(f"{where}: {len(out)} colours for {n} classes")
    return out[:n]  # type: ignore[return-value]


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map (bit-interleaved class index): distinct, and what users know."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


# --------------------------------------------------------------------------- classification


def scan_class_folders(root: str | Path, classes: list[str] | None = None) -> VisionData:
    """``root/<class>/<image>``: classes are the sorted sub-folder names (or ``classes``)."""
    r = Path(root)
    if not r.is_dir():
        raise DataError(f"{r}: not a folder (classification 'folders' layout: root/<class>/<image>)")
    found = sorted(p.name for p in r.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = classes or found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"{r / unknown[0]}: folder '{unknown[0]}' is not one of the {len(names)} class names")
    index = {n: i for i, n in enumerate(names)}
    samples = []
    for name in found:
        for p in sorted((r / name).rglob("*")):
            if _is_image(p):
                samples.append(ClassSample(p, (index[name],), str(p)))
    if not samples:
        raise DataError(f"{r}: no images in class folders")
    return VisionData(samples, list(names))


def _label_index(token: str, names: list[str] | None, where: str) -> int:
    if token.lstrip("-").isdigit():
        k = int(token)
        if names is not None and not 0 <= k < len(names):
            raise DataError(f"{where}: label {k} out of range (0..{len(names) - 1}, {len(names)} classes)")
        if k < 0:
            raise DataError(f"{where}: label {k} out of range (labels are 0, 1, ...)")
        return k
    if names is None:
        raise DataError(f"{where}: label '{token}' is a name but no class-names file is given (data.classes)")
    if token not in names:
        raise DataError(f"{where}: unknown label '{token}'{_dym(token, names)}")
    return names.index(token)


def _dym(token: str, names: list[str]) -> str:
    from qualitas.registry import did_you_mean

    return did_you_mean(token, names)


def read_class_list(
    list_file: str | Path,
    classes: list[str] | None,
    *,
    multi_label: bool = False,
    root: str | Path | None = None,
) -> VisionData:
    """``path label`` lines (``path l1 l2 ...`` / ``path l1,l2`` with ``multi_label``).

    Paths are relative to ``root`` (default: the list's folder). Missing images, unknown or
    out-of-range labels and an empty list are :class:`DataError` naming ``file:line``.
    """
    lf = Path(list_file)
    base = Path(root) if root is not None else lf.parent
    samples = []
    top = -1
    for i, line in read_lines(lf):
        where = f"{lf}:{i}"
        if multi_label:
            parts = line.replace(",", " ").split()
            path, tokens = parts[0], parts[1:]
        else:
            parts = line.rsplit(None, 1)
            if len(parts) == 1:
                raise DataError(f"{where}: expected 'path label', got {line!r}")
            path, tokens = parts[0], [parts[1]]
        if not tokens:
            raise DataError(f"{where}: no label after the path")
        labels = tuple(sorted({_label_index(t, classes, where) for t in tokens}))
        top = max(top, *labels)
        p = _under(base, path, where)
        if not p.is_file():
            raise DataError(f"{where}: image not found: {path}")
        samples.append(ClassSample(p, labels, where))
    if not samples:
        raise DataError(f"{lf}: empty list (no 'path label' lines)")
    names = classes or [str(k) for k in range(top + 1)]
    return VisionData(samples, names)


def _under(base: Path, rel: str, where: str) -> Path:
    """``base/rel``; it must stay under ``base`` (lists come from other people)."""
    # Lexical check (no symlink resolution): "../" and absolute paths may not escape, while a
    # dataset folder may still link its images from elsewhere.
    root = Path(os.path.abspath(base))
    p = Path(os.path.normpath(root / rel))
    if not p.is_relative_to(root):
        raise DataError(f"{where}: path {rel!r} leaves the dataset folder {base}")
    return p


def read_classification(fmt: str, split: str | Path, classes: list[str] | None) -> VisionData:
    if fmt == "auto":
        fmt = "folders" if Path(split).is_dir() else "list"
    if fmt == "folders":
        return scan_class_folders(split, classes)
    if fmt in ("list", "multilabel"):
        return read_class_list(split, classes, multi_label=fmt == "multilabel")
    raise ConfigError(
        f"unknown classification data.format '{fmt}'{_dym(fmt, list(CLASSIFICATION_FORMATS))}; "
        f"choose one of {', '.join(CLASSIFICATION_FORMATS)}"
    )


# --------------------------------------------------------------------------- segmentation


def _sub(root: Path, names: Sequence[str], what: str) -> Path:
    for n in names:
        if (root / n).is_dir():
            return root / n
    raise DataError(f"{root}: no {what} folder (one of {', '.join(names)})")


def scan_seg_folders(root: str | Path) -> VisionData:
    """``root/images/x.jpg`` + ``root/masks/x.png``, matched by stem (extensions may differ)."""
    r = Path(root)
    if not r.is_dir():
        raise DataError(f"{r}: not a folder (segmentation 'folders' layout: images/ and masks/)")
    images, masks = _sub(r, IMAGE_FOLDERS, "image"), _sub(r, MASK_FOLDERS, "mask")
    by_stem: dict[str, Path] = {}
    for m in sorted(masks.rglob("*")):
        if _is_image(m):
            key = str(m.relative_to(masks).with_suffix(""))
            if key in by_stem:
                raise DataError(f"{m}: two masks for '{key}' ({by_stem[key].name} and {m.name})")
            by_stem[key] = m
    samples = []
    for p in sorted(images.rglob("*")):
        if _is_image(p):
            key = str(p.relative_to(images).with_suffix(""))
            if key not in by_stem:
                raise DataError(f"{p}: no mask with stem '{key}' in {masks}")
            samples.append(SegSample(p, by_stem[key], str(p)))
    if not samples:
        raise DataError(f"{images}: no images")
    return VisionData(samples, [])


def read_seg_list(list_file: str | Path, root: str | Path | None = None) -> VisionData:
    """PaddleSeg list: ``image mask`` per line, relative to ``root`` (default: the list's folder)."""
    lf = Path(list_file)
    base = Path(root) if root is not None else lf.parent
    samples = []
    for i, line in read_lines(lf):
        where = f"{lf}:{i}"
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{where}: expected 'image mask', got {line!r}")
        img, mask = _under(base, parts[0], where), _under(base, parts[1], where)
        for p, what, rel in ((img, "image", parts[0]), (mask, "mask", parts[1])):
            if not p.is_file():
                raise DataError(f"{where}: {what} not found: {rel}")
        samples.append(SegSample(img, mask, where))
    if not samples:
        raise DataError(f"{lf}: empty list (no 'image mask' lines)")
    return VisionData(samples, [])


def read_segmentation(fmt: str, split: str | Path) -> VisionData:
    if fmt == "auto":
        fmt = "folders" if Path(split).is_dir() else "list"
    if fmt == "folders":
        return scan_seg_folders(split)
    if fmt == "list":
        return read_seg_list(split)
    raise ConfigError(
        f"unknown segmentation data.format '{fmt}'{_dym(fmt, list(SEGMENTATION_FORMATS))}; "
        f"choose one of {', '.join(SEGMENTATION_FORMATS)}"
    )


def read_mask(
    path: str | Path, *, palette: list[tuple[int, int, int]] | None = None, where: str | None = None
) -> np.ndarray:
    """A label mask ``(H, W)`` uint8 of class indices, exactly as stored (no resampling).

    ``L``/``P``/``I`` PNGs hold indices; an ``RGB`` mask is mapped through ``palette``
    (unknown colours are an error).
    """
    where = where or str(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.asarray(im.convert("RGB") if mode in ("RGB", "RGBA") else im)
    except (OSError, ValueError) as err:
        raise DataError(f"{where}: unreadable mask {path} ({err})") from None
    if arr.ndim == 3:
        if not palette:
            raise DataError(f"{where}: {path} is an RGB mask; give data.palette to map colours to classes")
        out = np.full(arr.shape[:2], 255, dtype=np.uint8)
        code = (arr[..., 0].astype(np.int32) << 16) | (arr[..., 1].astype(np.int32) << 8) | arr[..., 2]
        known = np.zeros(arr.shape[:2], dtype=bool)
        for k, (r, g, b) in enumerate(palette):
            hit = code == ((r << 16) | (g << 8) | b)
            out[hit] = k
            known |= hit
        white = code == 0xFFFFFF  # VOC-style "ignore" boundary colour
        if not np.all(known | white):
            bad = arr[~(known | white)][0]
            raise DataError(f"{where}: {path} has colour {tuple(int(v) for v in bad)} not in the palette")
        return out
    if arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise DataError(f"{where}: {path} holds values outside 0..255")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def check_mask(mask: np.ndarray, num_classes: int, ignore_index: int, where: str) -> None:
    """Every value is a class index or ``ignore_index``."""
    values = np.unique(mask)
    bad = [int(v) for v in values if v >= num_classes and v != ignore_index]
    if bad:
        raise DataError(
            f"{where}: mask value {bad[0]} out of range (classes 0..{num_classes - 1}, ignore {ignore_index})"
        )


def image_size(path: Path, where: str) -> tuple[int, int]:
    """``(H, W)`` from the file header."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, ValueError) as err:
        raise DataError(f"{where}: unreadable image {path} ({err})") from None
    return h, w


def check_seg_sizes(samples: Sequence[SegSample]) -> None:
    """Image and mask of every pair have the same size (headers only)."""
    for s in samples:
        hi, hm = image_size(s.image, s.where), image_size(s.mask, s.where)
        if hi != hm:
            raise DataError(
                f"{s.where}: mask {s.mask.name} is {hm[1]}x{hm[0]} but image {s.image.name} is {hi[1]}x{hi[0]}"
            )


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class Sizing:
    """Model input size ``(H, W)`` (``None``: images keep their size) and training augmentation."""

    size: tuple[int, int] | None
    augment: str = "basic"


AUGMENTS = ("none", "basic", "color", "timm")


def _tv2():
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    return v2, tv_tensors


def classification_transform(sizing: Sizing, *, train: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(3, H, W)`` float ``[0, 1]`` -> ``(3, h, w)``: torchvision v2, or timm's RandAugment."""
    v2, _ = _tv2()
    size = sizing.size
    if train and sizing.augment == "timm":
        if size is None:
            raise ConfigError("data.augment timm needs data.input_size.size [H, W]")
        from timm.data import create_transform

        tf = create_transform(
            size, is_training=True, auto_augment="rand-m9-mstd0.5", mean=(0.0,) * 3, std=(1.0,) * 3
        )
        to_pil = v2.ToPILImage()
        return lambda x: tf(to_pil(x))
    steps: list = []
    if train and sizing.augment != "none":
        if size is not None:
            steps.append(v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True))
        steps.append(v2.RandomHorizontalFlip())
        if sizing.augment == "color":
            steps.append(v2.ColorJitter(0.3, 0.3, 0.3, 0.05))
    elif size is not None:
        steps.append(v2.Resize(size, antialias=True))
    return v2.Compose(steps) if steps else (lambda x: x)


def segmentation_transform(sizing: Sizing, *, train: bool) -> Callable:
    """``(image (3,H,W), mask (H,W))`` -> both transformed alike; the mask is resampled nearest
    (torchvision's ``tv_tensors.Mask``) so class indices are never blended."""
    v2, tv = _tv2()
    size = sizing.size
    steps: list = []
    if train and sizing.augment not in ("none",):
        if size is not None:
            steps.append(v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True))
        steps.append(v2.RandomHorizontalFlip())
        if sizing.augment == "color":
            steps.append(v2.ColorJitter(0.3, 0.3, 0.3, 0.05))
    elif size is not None:
        steps.append(v2.Resize(size, antialias=True))
    tf = v2.Compose(steps) if steps else None

    def apply(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tf is None:
            return image, mask
        img, m = tf(tv.Image(image), tv.Mask(mask))
        return img.as_subclass(torch.Tensor), m.as_subclass(torch.Tensor)

    return apply


# --------------------------------------------------------------------------- datasets


class ClassificationDataset(Dataset):
    """``{"input": (3,h,w) float, "target": () long | (K,) float (multi-label), "index"}``."""

    def __init__(
        self,
        samples: Sequence[ClassSample],
        num_classes: int,
        *,
        multi_label: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[str]:
        return [str(s.path) for s in self.samples]

    def targets(self) -> list[int]:
        """First label of each sample (for class-balanced sampling and counts)."""
        return [s.labels[0] for s in self.samples]

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        x = read_image(s.path).data
        if self.transform is not None:
            x = self.transform(x)
        if self.multi_label:
            y = torch.zeros(self.num_classes)
            y[list(s.labels)] = 1.0
        else:
            y = torch.tensor(s.labels[0], dtype=torch.long)
        return {"input": x.contiguous(), "target": y, "index": index}


class SegmentationDataset(Dataset):
    """``{"input": (3,h,w) float, "target": (h,w) long, "index"}``; mask values checked.

    ``full_mask``: also ``"full_mask"``, the label mask ``(H, W)`` at its own resolution
    (untransformed), for metrics counted at mask resolution (collated as a list)."""

    def __init__(
        self,
        samples: Sequence[SegSample],
        num_classes: int,
        *,
        ignore_index: int = 255,
        palette: list[tuple[int, int, int]] | None = None,
        transform: Callable | None = None,
        full_mask: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.palette = palette
        self.transform = transform
        self.full_mask = full_mask

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[str]:
        return [str(s.image) for s in self.samples]

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        x = read_image(s.image).data
        m = read_mask(s.mask, palette=self.palette, where=s.where)
        if tuple(m.shape) != tuple(x.shape[-2:]):
            raise DataError(
                f"{s.where}: mask {s.mask.name} is {m.shape[1]}x{m.shape[0]} but image "
                f"{s.image.name} is {x.shape[-1]}x{x.shape[-2]}"
            )
        check_mask(m, self.num_classes, self.ignore_index, s.where)
        y = torch.from_numpy(m.astype(np.int64))
        full = y
        if self.transform is not None:
            x, y = self.transform(x, y)
        item = {"input": x.contiguous(), "target": y.contiguous(), "index": index}
        if self.full_mask:
            item["full_mask"] = full
        return item


def split_samples(samples: list, ratios: dict[str, float], seed: int) -> tuple[list, list]:
    """(train, val) carved out of one list: a seeded shuffle, ``val`` share of the ratios."""
    total = sum(ratios.get(k, 0.0) for k in ("train", "val")) or 1.0
    share = ratios.get("val", 0.0) / total
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(share * len(samples))) if share > 0 else 0
    if n_val >= len(samples):
        raise DataError("too few samples to split off a validation set; give data.val")
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [samples[i] for i in train], [samples[i] for i in val]


def class_counts(samples: Sequence[ClassSample], n: int) -> list[int]:
    counts = [0] * n
    for s in samples:
        for k in s.labels:
            if k < n:
                counts[k] += 1
    return counts


def balanced_weights(samples: Sequence[ClassSample], n: int) -> list[float]:
    """Per-sample weight ``1 / count(class)``: each class is drawn equally often."""
    counts = class_counts(samples, n)
    return [1.0 / max(1, counts[s.labels[0]]) for s in samples]

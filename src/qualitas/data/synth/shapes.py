"""Synthetic shape datasets for the classification and segmentation tasks (tests, benchmarks,
the worked example of docs/tasks.md): textured backgrounds with coloured shapes.

Classification: one shape per image, class = shape kind (``circle``, ``square``,
``triangle``); colour, size, position and background are random, so only the shape tells the
class. Segmentation: one to three shapes per image, mask value = kind + 1 (0 = background).
Files are written in the official layouts read by :mod:`qualitas.data.vision`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from qualitas.data.manifest import atomic_write_text

KINDS = ("circle", "square", "triangle")
SEG_CLASSES = ("background", *KINDS)
SEG_PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size, 3)`` float: smooth colour gradient + stripes + noise (a texture)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0.2, 0.8, 3)
    tilt = rng.uniform(-0.3, 0.3, (2, 3))
    img = base + x[..., None] * tilt[0] + y[..., None] * tilt[1]
    freq, angle = rng.uniform(4, 12), rng.uniform(0, np.pi)
    stripes = 0.08 * np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)))
    img = img + stripes[..., None] + rng.normal(0, 0.04, (size, size, 3))
    return img


def _shape_mask(rng: np.random.Generator, kind: str, size: int, scale: tuple[float, float]) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    r = rng.uniform(*scale) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    if kind == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    if kind == "square":
        s = r * 0.85
        return (np.abs(x - cx) <= s) & (np.abs(y - cy) <= s)
    # upward triangle: inside three half-planes
    top, base_y, half = cy - r, cy + r * 0.8, r
    left = (x - (cx - half)) * (top - base_y) - (y - base_y) * (cx - (cx - half)) <= 0
    right = (x - (cx + half)) * (top - base_y) - (y - base_y) * (cx - (cx + half)) >= 0
    return left & right & (y <= base_y)


def _colour(rng: np.random.Generator, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A saturated colour far enough from the background under the shape."""
    under = background[mask].mean(0) if mask.any() else np.full(3, 0.5)
    for _ in range(20):
        c = rng.uniform(0, 1, 3)
        c[rng.integers(3)] = rng.choice([0.05, 0.95])
        if np.abs(c - under).sum() > 0.6:
            return c
    return 1.0 - under


def render_classification(rng: np.random.Generator, kind: int, size: int = 64) -> np.ndarray:
    """``(size, size, 3)`` uint8: one shape of kind ``KINDS[kind]``."""
    img = _background(rng, size)
    m = _shape_mask(rng, KINDS[kind], size, (0.24, 0.38))
    img[m] = _colour(rng, img, m) + rng.normal(0, 0.02, (int(m.sum()), 3))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_segmentation(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(image (size,size,3) uint8, mask (size,size) uint8)``; later shapes cover earlier ones."""
    img = _background(rng, size)
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        k = int(rng.integers(len(KINDS)))
        m = _shape_mask(rng, KINDS[k], size, (0.2, 0.3))
        img[m] = _colour(rng, img, m)
        mask[m] = k + 1
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def write_classification(
    out: str | Path, counts: dict[str, int], *, size: int = 64, seed: int = 0, layout: str = "folders"
) -> Path:
    """``counts`` images per split (spread evenly over the kinds), written as

    - ``folders``: ``out/<split>/<kind>/<n>.png``;
    - ``list``: ``out/images/<split>_<n>.png``, ``out/<split>.txt`` (``path label``) and
      ``out/classes.txt``.
    """
    o = Path(out)
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        lines = []
        for i in range(n):
            k = i % len(KINDS)
            im = Image.fromarray(render_classification(rng, k, size))
            if layout == "folders":
                p = o / split / KINDS[k] / f"{i:05d}.png"
            else:
                p = o / "images" / f"{split}_{i:05d}.png"
                lines.append(f"images/{p.name} {k}")
            p.parent.mkdir(parents=True, exist_ok=True)
            im.save(p)
        if layout != "folders":
            atomic_write_text(o / f"{split}.txt", "".join(line + "\n" for line in lines))
    if layout != "folders":
        atomic_write_text(o / "classes.txt", "".join(k + "\n" for k in KINDS))
    return o


def write_segmentation(
    out: str | Path, counts: dict[str, int], *, size: int = 64, seed: int = 0, layout: str = "folders"
) -> Path:
    """``counts`` image/mask pairs per split, written as

    - ``folders``: ``out/<split>/images/<n>.jpg`` + ``out/<split>/masks/<n>.png``;
    - ``list`` (PaddleSeg): ``out/origin_images/<split>_<n>.jpg``, ``out/labels/...png``,
      ``out/<split>.txt`` (``origin_images/x.jpg labels/x.png``);

    plus ``out/classes.txt`` and ``out/palette.txt``. Images are high-quality JPEG (the
    extensions differ from the masks', as in real datasets); masks are single-channel PNG.
    """
    o = Path(out)
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        lines = []
        for i in range(n):
            img, mask = render_segmentation(rng, size)
            if layout == "folders":
                ip, mp = o / split / "images" / f"{i:05d}.jpg", o / split / "masks" / f"{i:05d}.png"
            else:
                ip, mp = o / "origin_images" / f"{split}_{i:05d}.jpg", o / "labels" / f"{split}_{i:05d}.png"
                lines.append(f"origin_images/{ip.name} labels/{mp.name}")
            ip.parent.mkdir(parents=True, exist_ok=True)
            mp.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(ip, quality=95)
            Image.fromarray(mask, mode="L").save(mp)
        if layout != "folders":
            atomic_write_text(o / f"{split}.txt", "".join(line + "\n" for line in lines))
    atomic_write_text(o / "classes.txt", "".join(k + "\n" for k in SEG_CLASSES))
    atomic_write_text(o / "palette.txt", "".join(f"{r} {g} {b}\n" for r, g, b in SEG_PALETTE))
    return o


DET_CLASSES = ("rectangle", "ellipse")
KEYPOINT_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left")
KEYPOINT_SKELETON = ((1, 2), (2, 3), (3, 4), (4, 1))
"""COCO-style 1-based pairs: the outline of a quadrilateral."""
KEYPOINT_FLIP_PAIRS = ((0, 1), (2, 3))
"""0-based left/right pairs: a horizontal flip turns a top-left corner into a top-right one."""


def render_detection(
    rng: np.random.Generator, size: int = 96, *, keypoints: bool = False
) -> tuple[np.ndarray, list[tuple[float, float, float, float, int, tuple[float, ...]]]]:
    """``(image (size,size,3) uint8, objects)``: a textured background with 1-3 shapes.

    Detection: filled rectangles (class 1) and ellipses (class 2), each box the shape's extent.
    Keypoints: quadrilaterals (class 1, jittered rectangles) whose four corners are the
    keypoints (``KEYPOINT_NAMES``, all visible), box = the corners' extent. Shapes do not
    overlap, so every box is fully visible. Objects are ``(x1, y1, x2, y2, class, keypoints)``
    with COCO's flat ``x, y, v`` keypoints (empty for detection).
    """
    from PIL import ImageDraw

    img = Image.fromarray((np.clip(_background(rng, size), 0, 1) * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    objects: list[tuple[float, float, float, float, int, tuple[float, ...]]] = []
    taken: list[tuple[int, int, int, int]] = []
    lo, hi = max(10, size // 7), max(14, size * 2 // 5)
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            w, h = (int(v) for v in rng.integers(lo, hi, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            if all(x + w <= a or a + c <= x or y + h <= b or b + d <= y for a, b, c, d in taken):
                break
        else:
            continue
        taken.append((x, y, w, h))
        colour = tuple(
            int(c) for c in (_colour(rng, np.asarray(img) / 255.0, np.ones((size, size), bool)) * 255)
        )
        if keypoints:
            j = max(1, min(w, h) // 6)
            corners = [
                (x + rng.integers(0, j), y + rng.integers(0, j)),
                (x + w - rng.integers(0, j), y + rng.integers(0, j)),
                (x + w - rng.integers(0, j), y + h - rng.integers(0, j)),
                (x + rng.integers(0, j), y + h - rng.integers(0, j)),
            ]
            pts = [(float(a), float(b)) for a, b in corners]
            draw.polygon(pts, fill=colour)
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            kp = tuple(v for p in pts for v in (p[0], p[1], 2.0))
            objects.append((min(xs), min(ys), max(xs), max(ys), 1, kp))
        else:
            cls = int(rng.integers(1, 3))
            (draw.rectangle if cls == 1 else draw.ellipse)([x, y, x + w - 1, y + h - 1], fill=colour)
            objects.append((float(x), float(y), float(x + w), float(y + h), cls, ()))
    return np.asarray(img), objects


def write_detection(
    out: str | Path, counts: dict[str, int], *, size: int = 96, seed: int = 0, keypoints: bool = False
) -> Path:
    """``counts`` images per split in the COCO layout: ``out/images/<split>/<n>.png`` and
    ``out/annotations/instances_<split>.json`` (``person_keypoints_<split>.json`` with
    ``keypoints``: one category ``quad`` with four corner keypoints and their skeleton).
    Read them with ``data.format: coco``, ``data.root: out/images/{split}``."""
    from qualitas.data.detection import Box, DetectionSet, DetImage, write_coco

    o = Path(out)
    rng = np.random.default_rng(seed)
    cats = {1: "quad"} if keypoints else {i + 1: c for i, c in enumerate(DET_CLASSES)}
    for split, n in counts.items():
        images = []
        for i in range(n):
            arr, objects = render_detection(rng, size, keypoints=keypoints)
            p = o / "images" / split / f"{i:05d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(p)
            boxes = tuple(Box(x1, y1, x2, y2, c, keypoints=kp) for x1, y1, x2, y2, c, kp in objects)
            images.append(DetImage(p.name, size, size, boxes, i + 1))
        ds = DetectionSet(
            images,
            cats,
            KEYPOINT_NAMES if keypoints else (),
            KEYPOINT_SKELETON if keypoints else (),
        )
        name = f"person_keypoints_{split}.json" if keypoints else f"instances_{split}.json"
        (o / "annotations").mkdir(parents=True, exist_ok=True)
        write_coco(ds, o / "annotations" / name)
    return o

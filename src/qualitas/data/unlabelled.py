"""Unlabelled media for self-supervised pretraining (``qualitas pretrain``).

A source is a folder (images and videos, recursively) or a manifest whose rows name images,
videos or frame folders (only ``path`` is read; scores, if any, are ignored). Videos become
frames through ``qualitas data frames`` (:func:`qualitas.data.frames.extract_frames`:
resumable, so a second run over the same ``frames_dir`` decodes nothing).

Each sample is two views of one image, ``views (2, 3, crop, crop)`` float in ``[0, 1]``, and
a contrastive ``label`` (int):

* :class:`SimCLRViews` — content-aware: lightly's SimCLR augmentations (random resized
  crop, colour jitter, grayscale, blur, flip); the label is the image itself.
* :class:`DistortionViews` — quality-aware (CONTRIQUE, Madhusudana et al. 2022): one
  synthetic distortion class (``qualitas data synth`` type x level, or pristine) is drawn,
  applied to a region of the image, and two crops of that region are the views; the label
  is the class, so every image of the batch with the same distortion class is a positive.
  No colour or blur augmentation: those would change the quality the features must encode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from qualitas.data.manifest import read_manifest, resolve_under
from qualitas.errors import ConfigError, DependencyError, QualitasError, one_line
from qualitas.io.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".jsonl", ".csv")


def list_media(source: str | Path, root: str | Path | None = None) -> tuple[list[Path], list[Path]]:
    """``(images, videos)`` of a folder or a manifest (frame folders count as images)."""
    src = Path(source).expanduser()
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        videos = [p for p in files if p.suffix.lower() in VIDEO_EXTENSIONS - {".yuv"}]
    elif src.is_file() and src.suffix.lower() in MANIFEST_SUFFIXES:
        base = Path(root).expanduser() if root else src.parent
        images, videos = [], []
        for rec in read_manifest(src):
            if not rec.path:
                continue
            p = resolve_under(base, rec.path)
            if p.is_dir():
                images += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            elif p.suffix.lower() in VIDEO_EXTENSIONS:
                videos.append(p)
            else:
                images.append(p)
    else:
        raise ConfigError(f"pretrain.source '{src}' is neither a folder nor a .jsonl/.csv manifest")
    return images, videos


def video_frames(videos: Sequence[Path], frames_dir: Path, per_video: int, *, progress: bool) -> list[Path]:
    """About ``per_video`` evenly spread frames of each video, extracted as PNG files."""
    from qualitas.data.frames import FrameOptions, extract_video, video_id
    from qualitas.io.video import probe_video

    out: list[Path] = []
    for video in videos:
        try:
            n = probe_video(video).num_frames or per_video
            opts = FrameOptions(step=max(1, n // per_video), max_frames=per_video)
            recs, _, _ = extract_video(video, frames_dir, video_id(video, None), opts, progress=progress)
        except (QualitasError, OSError) as err:  # one bad video never stops the run
            log.warning("pretrain: skipping video %s: %s", video, one_line(err))
            continue
        out += [frames_dir / r.path for r in recs]
    return out


def load_rgb(path: Path, max_side: int = 0) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB, the longer side downscaled to ``max_side`` (0: kept)."""
    from qualitas.data.frames import to_uint8_hwc
    from qualitas.io.image import read_image

    img = to_uint8_hwc(read_image(path).data)
    h, w = img.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        img = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))
    return img


def _rng() -> np.random.Generator:
    # From torch's generator: seeded per worker by Lightning's seed_everything(workers=True).
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def _at_least(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if min(h, w) >= side:
        return img
    s = side / min(h, w)
    size = (max(side, round(w * s)), max(side, round(h * s)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))


class SimCLRViews:
    """Two SimCLR views (lightly ``SimCLRTransform``, no normalisation: the models normalise)."""

    def __init__(self, crop: int) -> None:
        try:
            from lightly.transforms import SimCLRTransform
        except ImportError:
            raise DependencyError("pretraining needs lightly: pip install 'qualitas[pretrain]'") from None
        self.transform = SimCLRTransform(input_size=crop, normalize=None, min_scale=0.2)

    def __call__(self, img: np.ndarray, index: int) -> tuple[torch.Tensor, int]:
        views = self.transform(Image.fromarray(img))
        return torch.stack(views), index


class DistortionViews:
    """CONTRIQUE views: ``classes[k]`` = pristine (k = 0) or ``(type, level)``; two crops of one
    distorted region; label ``k``."""

    def __init__(self, crop: int, types: Sequence[str] | None, levels: Sequence[int]) -> None:
        from qualitas.data.synth import distortions as D

        names = list(types) if types else D.DISTORTIONS.names()
        for name in names:
            D.DISTORTIONS.get(name)  # unknown names: one line with a suggestion
        bad = [lv for lv in levels if not 1 <= int(lv) <= D.NUM_LEVELS]
        if bad or not levels:
            raise ConfigError(f"pretrain.levels must be in 1..{D.NUM_LEVELS}, got {list(levels)}")
        probe = np.full((32, 32, 3), 128, np.uint8)
        for name in names:  # codecs missing from this Pillow (webp, jpeg2000): fail before the run
            D.DISTORTIONS.get(name)(probe, 1, np.random.default_rng(0))
        self.crop = crop
        self.classes: list[tuple[str, int]] = [("pristine", 0)] + [
            (n, int(lv)) for n in names for lv in levels
        ]
        self._table = D.DISTORTIONS

    def __call__(self, img: np.ndarray, index: int) -> tuple[torch.Tensor, int]:
        rng = _rng()
        c = self.crop
        img = _at_least(img, c)
        h, w = img.shape[:2]
        # A region 1.5x the crop: the two views overlap (Re-IQA/CONTRIQUE both use views of
        # one distorted image) and the distortion costs a fraction of the whole image.
        side = min(h, w, round(1.5 * c))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        region = np.ascontiguousarray(img[y : y + side, x : x + side])
        k = int(rng.integers(0, len(self.classes)))
        name, level = self.classes[k]
        if level:
            region = self._table.get(name)(region, level, rng)
        views = []
        for _ in range(2):
            vy, vx = int(rng.integers(0, side - c + 1)), int(rng.integers(0, side - c + 1))
            v = region[vy : vy + c, vx : vx + c]
            views.append(_to_tensor(v[:, ::-1] if rng.random() < 0.5 else v))
        return torch.stack(views), k


VIEWS: dict[str, Callable[..., Callable[[np.ndarray, int], tuple[torch.Tensor, int]]]] = {
    "simclr": SimCLRViews,
    "contrique": DistortionViews,
}


class UnlabelledDataset(Dataset):
    """``{"index", "views" (2, 3, crop, crop), "label"}`` per image; ``None`` for an unreadable
    file (dropped and counted by :func:`qualitas.data.datasets.collate_skip`).

    ``cache=True`` keeps the decoded, downscaled images in memory (per worker): small
    collections are then decoded once instead of once per epoch.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        views: Callable[[np.ndarray, int], tuple[torch.Tensor, int]],
        *,
        max_side: int = 0,
        cache: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.views = views
        self.max_side = max_side
        self.cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict | None:
        try:
            img = self.cache.get(index) if self.cache is not None else None
            if img is None:
                img = load_rgb(self.paths[index], self.max_side)
                if self.cache is not None:
                    self.cache[index] = img
            views, label = self.views(img, index)
        except (QualitasError, OSError, ValueError) as err:
            log.warning("pretrain: skipping %s: %s", self.paths[index], one_line(err))
            return None
        return {"index": index, "views": views, "label": label}

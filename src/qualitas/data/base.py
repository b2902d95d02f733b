"""Datasets over a manifest: images, videos decoded on the fly, frame folders, ranking pairs.

Every dataset returns one ``dict`` per sample (or ``None`` when the media fails to decode —
:func:`collate_skip` drops those and counts them, so one bad file never stops a run):

- ``index`` (int): position in the dataset (unique; used to de-duplicate DDP padding);
- ``item`` (int): record index (several eval clips of one video share it; predictions
  are aggregated per item);
- ``input``: ``(3,H,W)`` image or ``(T,3,H,W)`` clip; ``ref``: the same for full reference;
- ``target``: normalised MOS (float32 scalar, see :class:`ScoreNorm`); ``mos``: raw MOS
  (NaN when unknown); ``votes``: normalised histogram ``(N,)`` when every record has one;
- pairs: ``better`` and ``worse`` inputs instead of ``input``.

Bad rows are found before training by :func:`qualitas.data.precheck.check_records` (missing files, paths outside
the root, NaN/out-of-range scores, unreadable media) and reported together.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset, default_collate

from qualitas.data.manifest import Record, resolve_under
from qualitas.data.media import list_frames, load_image, load_video_frames, probe_frames
from qualitas.data.sampling import ClipSampling
from qualitas.data.scores import ScoreNorm, record_mos
from qualitas.data.transforms import InputSize, match_to, size_sample
from qualitas.errors import ConfigError, MediaError, QualitasError, one_line
from qualitas.registry import Registry

log = logging.getLogger("qualitas.data.datasets")

DATASETS: Registry[type] = Registry("datasets")


class QualityDataset(Dataset):
    """Base: records + root + sizing + normalisation. Subclasses implement ``_media``.

    Args:
        records: manifest rows of this split (already checked).
        root: folder the manifest paths are relative to.
        train: random crops/offsets when True; deterministic otherwise.
        input_size: sizing policy applied identically to dist and ref.
        score_norm: MOS normalisation (fit on the training split).
        full_reference: also load ``ref`` for every record.
        sampling, eval_clips, frame_counts: video datasets only.
    """

    def __init__(
        self,
        records: Sequence[Record],
        root: str | Path,
        *,
        train: bool,
        input_size: InputSize = InputSize(),
        score_norm: ScoreNorm = ScoreNorm(),
        full_reference: bool = False,
        sampling: ClipSampling = ClipSampling(),
        eval_clips: int = 1,
        frame_counts: dict[str, int] | None = None,
        vote_bins: Sequence[float] | None = None,
    ) -> None:
        self.records = list(records)
        self.root = Path(root)
        self.train = train
        self.input_size = input_size
        self.score_norm = score_norm
        self.full_reference = full_reference
        self.sampling = sampling
        self.eval_clips = max(1, int(eval_clips))
        self.frame_counts = dict(frame_counts or {})
        self.vote_bins = list(vote_bins) if vote_bins is not None else None
        self.with_votes = bool(self.records) and all(r.votes for r in self.records)
        if full_reference and any(r.ref is None for r in self.records):
            missing = sum(r.ref is None for r in self.records)
            raise ConfigError(f"full-reference data: {missing} records have no 'ref'")
        self.items = self._build_items()
        self.failures: Counter = Counter()
        self._meta: dict[str, tuple[int, float]] = {}

    def _build_items(self) -> list[tuple[int, int]]:
        """(record index, clip index) per sample; images have one clip per record."""
        return [(i, 0) for i in range(len(self.records))]

    def __len__(self) -> int:
        return len(self.items)

    def _path(self, rel: str) -> Path:
        return resolve_under(self.root, rel)

    def _select(self, rec: Record, clip: int) -> list[int] | None:
        """Frames to load for this sample (None for images); drawn once so the distorted
        and the reference clip use the same frame indices."""
        return None

    def _media(self, rel: str, frames: list[int] | None) -> torch.Tensor:
        raise NotImplementedError

    def _inputs(self, rec: Record, rec_index: int, clip: int) -> dict[str, torch.Tensor]:
        frames = self._select(rec, clip)
        dist = self._media(rec.path, frames)
        if not self.full_reference:
            (dist,) = size_sample([dist], self.input_size, train=self.train)
            return {"input": dist}
        ref = self._media(rec.ref, frames)  # type: ignore[arg-type]
        if dist.shape[-2:] != ref.shape[-2:]:
            dist = match_to(dist, tuple(ref.shape[-2:]))
        if dist.shape != ref.shape:
            raise MediaError(f"{rec.path}: {tuple(dist.shape)} frames but reference has {tuple(ref.shape)}")
        dist, ref = size_sample([dist, ref], self.input_size, train=self.train)
        return {"input": dist, "ref": ref}

    def __getitem__(self, index: int) -> dict | None:
        rec_index, clip = self.items[index]
        rec = self.records[rec_index]
        try:
            sample = self._inputs(rec, rec_index, clip)
        except (QualitasError, OSError, RuntimeError, ValueError, EOFError) as err:
            # Counted and dropped by collate_skip; a decode error must not end a long run.
            self.failures[rec.path] += 1
            if self.failures[rec.path] == 1:
                log.warning("skipping %s: %s", rec.path, one_line(err))
            return None
        mos = record_mos(rec, self.vote_bins)
        sample["index"] = index
        sample["item"] = rec_index
        sample["mos"] = torch.tensor(mos, dtype=torch.float32)
        sample["target"] = torch.tensor(self.score_norm.forward(mos), dtype=torch.float32)
        if self.with_votes:
            v = torch.tensor(rec.votes, dtype=torch.float32)
            sample["votes"] = v / v.sum()
        return sample


@DATASETS.register("image")
class ImageDataset(QualityDataset):
    """Still images (NR, or FR with ``ref``)."""

    def _media(self, rel: str, frames: list[int] | None) -> torch.Tensor:
        return load_image(self._path(rel))


class _ClipDataset(QualityDataset):
    """Shared clip logic: one random clip per video in training, ``eval_clips`` in eval."""

    def _build_items(self) -> list[tuple[int, int]]:
        if self.train:
            return [(i, 0) for i in range(len(self.records))]
        return [(i, c) for i in range(len(self.records)) for c in range(self.eval_clips)]

    def _total(self, path: Path) -> int:
        raise NotImplementedError

    def _select(self, rec: Record, clip: int) -> list[int]:
        total = self._total(self._path(rec.path))
        if self.train:
            return self.sampling.indices(total, train=True)
        clips = self.sampling.eval_clips(total, self.eval_clips)
        return clips[min(clip, len(clips) - 1)]


@DATASETS.register("video")
class VideoDataset(_ClipDataset):
    """Videos decoded on the fly; only the sampled frames are kept in memory."""

    def _probe(self, path: Path) -> tuple[int, float]:
        key = str(path)
        if key not in self._meta:  # probed once per worker, then cached
            self._meta[key] = probe_frames(path)
        return self._meta[key]

    def _total(self, path: Path) -> int:
        return self.frame_counts.get(str(path)) or self._probe(path)[0]

    def _media(self, rel: str, frames: list[int] | None) -> torch.Tensor:
        path = self._path(rel)
        return load_video_frames(path, frames or [0], fps=self._probe(path)[1])


@DATASETS.register("frames")
class FrameFolderDataset(_ClipDataset):
    """Folders of pre-extracted frames (``path`` is the folder), sampled like videos."""

    def _total(self, path: Path) -> int:
        return len(list_frames(path))

    def _media(self, rel: str, frames: list[int] | None) -> torch.Tensor:
        path = self._path(rel)
        files = list_frames(path)
        if not files:
            raise MediaError(f"{path}: no frame images in folder")
        cache: dict[int, torch.Tensor] = {}
        out = []
        for i in frames or [0]:
            i = min(i, len(files) - 1)  # a reference folder with fewer frames repeats its last
            if i not in cache:
                cache[i] = load_image(files[i])
            out.append(cache[i])
        return torch.stack(out)


def pairs_from_groups(records: Sequence[Record], min_gap: float = 0.0) -> list[tuple[str, str]]:
    """RankIQA-style pairs: within each content group, every (better, worse) by MOS.

    Pairs closer than ``min_gap`` in MOS are skipped (ties carry no ranking signal).
    """
    by_group: dict[str, list[Record]] = {}
    for r in records:
        if r.path and r.mos is not None and math.isfinite(r.mos):
            by_group.setdefault(r.group or r.ref or r.path, []).append(r)
    pairs = []
    for recs in by_group.values():
        for a in recs:
            for b in recs:
                if a.mos - b.mos > min_gap:  # type: ignore[operator]
                    pairs.append((a.path, b.path))
    return pairs


@DATASETS.register("pairs")
class PairDataset(QualityDataset):
    """Ranking pairs (NR images): explicit ``better``/``worse`` rows, plus pairs made
    within each content group from rows that have a MOS (``pairs_from_groups``).

    In evaluation (``train=False``) it behaves like :class:`ImageDataset` over the rows
    with a ``path`` and a score, so validation reports SROCC as for regression.
    """

    def __init__(self, records: Sequence[Record], root: str | Path, *, train: bool, **kwargs) -> None:
        self.pairs: list[tuple[str, str]] = []
        if train:
            self.pairs = [(r.better, r.worse) for r in records if r.is_pair]  # type: ignore[misc]
            self.pairs += pairs_from_groups(records)
        else:
            records = [r for r in records if r.path and not math.isnan(record_mos(r))]
        if kwargs.get("full_reference"):
            raise ConfigError("ranking pairs are no-reference: set data.full_reference: false")
        super().__init__(records, root, train=train, **kwargs)

    def _build_items(self) -> list[tuple[int, int]]:
        if self.train:
            return [(i, 0) for i in range(len(self.pairs))]
        return super()._build_items()

    def _media(self, rel: str, frames: list[int] | None) -> torch.Tensor:
        return load_image(self._path(rel))

    def __getitem__(self, index: int) -> dict | None:
        if not self.train:
            return super().__getitem__(index)
        better, worse = self.pairs[index]
        try:
            a, b = load_image(self._path(better)), load_image(self._path(worse))
            if a.shape != b.shape:
                b = match_to(b, tuple(a.shape[-2:]))
            # Same crop for both, so the pair differs in quality, not in content.
            a, b = size_sample([a, b], self.input_size, train=True)
        except (QualitasError, OSError, RuntimeError, ValueError, EOFError) as err:
            self.failures[better] += 1
            log.warning("skipping pair %s > %s: %s", better, worse, one_line(err))
            return None
        return {"index": index, "item": index, "better": a, "worse": b}


def collate_skip(batch: list[dict | None]) -> dict:
    """Collate that drops failed samples (``None``) and reports how many in ``skipped``.

    Returns ``{"skipped": n, "size": 0}`` when the whole batch failed. Keys in
    :data:`RAGGED_KEYS` come back as lists.
    """
    kept = [b for b in batch if b is not None]
    skipped = len(batch) - len(kept)
    if not kept:
        return {"skipped": skipped, "size": 0}
    for key in ("input", "ref", "better"):
        if key in kept[0]:
            shapes = {tuple(b[key].shape) for b in kept}
            if len(shapes) > 1:
                raise ConfigError(
                    f"samples in one batch differ in shape {sorted(shapes)[:2]}; set data.input_size "
                    "(resize/crop/pad/fragments) or data.batch_size: 1"
                )
    ragged = {key: [b.pop(key) for b in kept] for key in RAGGED_KEYS if key in kept[0]}
    out = default_collate(kept)
    out.update(ragged)
    out["skipped"] = skipped
    out["size"] = len(kept)
    return out


RAGGED_KEYS = ("full_mask",)
"""Sample keys collated as a list, not stacked: tensors whose size differs between samples
(a segmentation label mask at its own resolution, for metrics at mask resolution)."""


# --------------------------------------------------------------------------- checks

"""Preparing a run's data and its record: the checked manifest rows, their split, the fitted
MOS normalisation and the datasets (:func:`prepare_data`); the model/data agreement check;
and :func:`run_info`, what every checkpoint records (:class:`qualitas.models.checkpoint.RunInfo`).
Shared by gradient training (:mod:`qualitas.training.run`) and the probe
(:mod:`qualitas.training.probe`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualitas.data.datasets import (
    DATASETS,
    CheckReport,
    DataError,
    ScoreNorm,
    check_records,
    media_kind_of,
    record_mos,
)
from qualitas.data.manifest import Record, read_manifest, resolve_under
from qualitas.data.sampling import ClipSampling
from qualitas.data.splits import assign_splits, leaked_groups
from qualitas.data.transforms import InputSize
from qualitas.errors import ConfigError
from qualitas.files import atomic_write_text
from qualitas.models.checkpoint import RunInfo
from qualitas.training.config import DataConfig, TrainConfig

log = logging.getLogger("qualitas.training")


@dataclass
class PreparedData:
    """Checked records, their split, the fitted MOS normalisation and the datasets."""

    records: list[Record]
    splits: dict[str, list[int]]
    datasets: dict[str, Any]
    score_norm: ScoreNorm
    dataset_name: str
    report: CheckReport
    manifest: Path
    root: Path


def data_paths(data: DataConfig) -> tuple[Path, Path]:
    """(manifest, root): root defaults to the manifest's folder."""
    if not data.manifest:
        raise ConfigError("data.manifest is not set (a JSONL or CSV manifest, see docs/manifest.md)")
    manifest = Path(data.manifest).expanduser()
    root = Path(data.root).expanduser() if data.root else manifest.parent
    return manifest, root


def input_size_of(data: DataConfig) -> InputSize:
    return InputSize.from_dict(dataclasses.asdict(data.input_size))


def sampling_of(data: DataConfig) -> ClipSampling:
    return ClipSampling(mode=data.sampling.mode, num_frames=data.sampling.num_frames, step=data.sampling.step)


def choose_dataset(name: str, records: list[Record], root: Path, target: str) -> str:
    """Resolve ``auto``: pairs for ranking losses, else from the first record's media."""
    if name != "auto":
        DATASETS.get(name)  # unknown names -> ConfigError with a suggestion
        return name
    if target == "rank":
        return "pairs"
    first = next((r for r in records if r.path), None)
    if first is None:
        raise ConfigError("cannot pick a dataset: no record has a 'path'; set data.dataset")
    return {"frames": "frames", "video": "video"}.get(media_kind_of(resolve_under(root, first.path)), "image")


def prepare_data(
    data: DataConfig,
    *,
    full_reference: bool,
    target: str,
    run_dir: Path | None = None,
) -> PreparedData:
    """Read, check and split the manifest; build train/val/test datasets.

    Every bad row is found before training; with ``on_error: fail`` they are reported
    together (counts per kind) in one error, with ``skip`` they are dropped and listed in
    ``data_problems.json``.
    """
    if data.on_error not in ("fail", "skip"):
        raise ConfigError(f"data.on_error must be fail or skip, got '{data.on_error}'")
    manifest, root = data_paths(data)
    records = read_manifest(manifest)
    if not records:
        raise DataError(f"{manifest}: no records")
    score_range = tuple(data.score_range) if data.score_range is not None else None
    if score_range is not None and (len(score_range) != 2 or score_range[0] >= score_range[1]):
        raise ConfigError(f"data.score_range must be [lo, hi] with lo < hi, got {data.score_range}")
    need = {"mos": "mos", "votes": "votes", "rank": "rank"}[target]
    report = check_records(
        records,
        root,
        need=need,
        score_range=score_range,  # type: ignore[arg-type]
        check_media=data.check_media,
        full_reference=full_reference,
    )
    if report.problems:
        if run_dir is not None and _is_global_zero():
            atomic_write_text(run_dir / "data_problems.json", json.dumps(report.to_dict(), indent=1))
        msg = report.summary(str(manifest))
        if data.on_error == "fail":
            raise DataError(f"{msg}; fix them or set data.on_error=skip")
        log.warning("%s; skipping them (data.on_error=skip)", msg)
        bad = report.bad_lines
        records = [r for i, r in enumerate(records) if i not in bad]
    splits = assign_splits(records, data.split_ratios, data.split_seed)
    leaked = leaked_groups(records, splits)
    if leaked:
        log.warning("%d content groups appear in more than one split (e.g. %s)", len(leaked), leaked[0])
    if not splits["train"]:
        raise DataError(f"{manifest}: the training split is empty")
    if not splits["val"]:
        raise DataError(f"{manifest}: the validation split is empty (add split=val rows or a val ratio)")
    train_recs = [records[i] for i in splits["train"]]
    norm_kind = data.mos_norm
    if target != "mos" and norm_kind != "none":
        log.warning("data.mos_norm=%s ignored: the %s target is not regressed on MOS", norm_kind, target)
        norm_kind = "none"
    norm = ScoreNorm.fit(norm_kind, [record_mos(r, data.vote_bins) for r in train_recs], score_range)  # type: ignore[arg-type]
    name = choose_dataset(data.dataset, records, root, target)
    cls = DATASETS.get(name)
    common = {
        "input_size": input_size_of(data),
        "score_norm": norm,
        "full_reference": full_reference,
        "sampling": sampling_of(data),
        "eval_clips": data.eval_clips,
        "frame_counts": report.frame_counts,
        "vote_bins": data.vote_bins,
    }
    datasets = {}
    for split in ("train", "val", "test"):
        recs = [records[i] for i in splits[split]]
        datasets[split] = cls(recs, root, train=(split == "train"), **common) if recs else None
    if len(datasets["val"]) == 0:
        raise DataError(f"{manifest}: no validation rows with a score")
    if run_dir is not None and _is_global_zero():
        listing = {
            s: [records[i].path or f"{records[i].better}>{records[i].worse}" for i in idx]
            for s, idx in splits.items()
        }
        atomic_write_text(run_dir / "splits.json", json.dumps(listing, indent=1))
    return PreparedData(records, splits, datasets, norm, name, report, manifest, root)


def _is_global_zero() -> bool:
    return (
        int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0)) or 0) == 0
        and int(os.environ.get("LOCAL_RANK", 0) or 0) == 0
        and int(os.environ.get("NODE_RANK", 0) or 0) == 0
    )


def check_model_data(spec: Any, dataset_name: str, data: DataConfig) -> None:
    """The model and the data must agree: video vs image, clip length for TSM."""
    clips = dataset_name in ("video", "frames")
    if bool(spec.video) != clips:
        raise ConfigError(
            f"model '{spec.arch}' takes {'video clips' if spec.video else 'images'} but data.dataset "
            f"is '{dataset_name}'; use {'video or frames' if spec.video else 'image or pairs'}"
        )
    if clips and spec.fixed_num_frames and spec.num_frames != data.sampling.num_frames:
        raise ConfigError(
            f"the model needs clips of {spec.num_frames} frames (TSM num_segments) but "
            f"data.sampling.num_frames is {data.sampling.num_frames}"
        )


def run_info(
    cfg: TrainConfig, spec: Any, data: PreparedData, *, full_reference: bool, target: str, monitor: str
) -> dict:
    """What a run records about itself in every checkpoint (``ckpt["qualitas"]``):
    :meth:`RunInfo.to_dict` (plain data, as ``torch.load(weights_only=True)`` reads it)."""
    return RunInfo(
        model={"name": cfg.model["name"], "kwargs": dict(cfg.model_kwargs)},
        spec=spec.to_dict(),
        score_norm=data.score_norm,
        input_size=input_size_of(cfg.data),
        sampling=sampling_of(cfg.data),
        eval_clips=cfg.data.eval_clips,
        full_reference=full_reference,
        video=bool(spec.video),
        target=target,
        dataset=data.dataset_name,
        manifest=str(data.manifest),
        root=str(data.root),
        higher_is_better=cfg.data.higher_is_better,
        score_range=tuple(cfg.data.score_range) if cfg.data.score_range else None,  # type: ignore[arg-type]
        vote_bins=cfg.data.vote_bins,
        split_seed=cfg.data.split_seed,
        split_ratios=dict(cfg.data.split_ratios),
        monitor=monitor,
        config=cfg.to_dict(),
    ).to_dict()

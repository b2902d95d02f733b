"""Object detection and keypoints on the shared engine (``task: detection | keypoints``,
docs/tasks.md).

:func:`prepare_detection_data` reads the configured splits (COCO JSON, Pascal VOC, YOLO;
keypoints: COCO) with :mod:`qualitas.data.detection` into training datasets
(:mod:`qualitas.data.detection_data`); :class:`DetectionTask` is
:class:`~qualitas.training.task.QualityTask` whose training step is the (weighted) sum of
torchvision's loss dict and whose validation computes COCO mAP (or OKS AP) over the whole
split with :mod:`qualitas.evaluation.detection`; :func:`setup_detection` builds model, task
and loaders for :func:`qualitas.training.run.train` (same run folder, trainer, checkpoints,
resume, fine-tuning, curves and metrics.json as every other run).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qualitas.data.datasets import DataError
from qualitas.data.detection import DetectionSet, check_detection, read_detection
from qualitas.data.detection_data import (
    DetectionDataset,
    DetectionTransform,
    LabelMap,
    check_same_categories,
    collate_detection,
    flip_permutation,
)
from qualitas.data.manifest import atomic_write_text
from qualitas.data.vision import split_samples
from qualitas.errors import ConfigError
from qualitas.evaluation.detection import (
    DETECTION_FIGURES,
    detection_figures,
    keypoint_sigmas,
    to_detections,
)
from qualitas.registry import did_you_mean
from qualitas.training.config import TrainConfig
from qualitas.training.task import QualityTask, _gather_objects

log = logging.getLogger("qualitas.training")

SPLITS = ("train", "val", "test")
DET_FORMATS = ("coco", "voc", "yolo")


@dataclass
class DetectionPrepared:
    """The datasets of a detection/keypoint run, their ground truth and label description."""

    kind: str
    """``detection`` | ``keypoints``."""
    datasets: dict[str, DetectionDataset | None]
    sets: dict[str, DetectionSet | None]
    """Ground truth per split, image ``i`` = dataset item ``i`` (crowd boxes included)."""
    labels: LabelMap
    keypoint_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    flip_pairs: list[list[int]] = field(default_factory=list)
    sigmas: tuple[float, ...] = ()
    counts: dict[str, list[int]] = field(default_factory=dict)
    """Boxes per class and split."""

    @property
    def classes(self) -> list[str]:
        return list(self.labels.names)

    @property
    def num_classes(self) -> int:
        return self.labels.num_classes

    def split_sizes(self) -> dict[str, int]:
        return {s: len(d) if d is not None else 0 for s, d in self.datasets.items()}


def detection_format(cfg: TrainConfig) -> str:
    fmt = cfg.data.format
    if fmt == "auto":
        fmt = "coco" if str(cfg.data.train or "").lower().endswith(".json") else "voc"
        if fmt == "voc" and not (Path(str(cfg.data.train)) / "Annotations").is_dir():
            fmt = "yolo"
    if fmt not in DET_FORMATS:
        raise ConfigError(
            f"data.format '{fmt}' is not a detection format{did_you_mean(fmt, DET_FORMATS)}; "
            f"choose one of {', '.join(DET_FORMATS)}"
        )
    if cfg.task == "keypoints" and fmt != "coco":
        raise ConfigError(f"task keypoints reads COCO person-keypoints files (data.format: coco), not {fmt}")
    return fmt


def _read_split(cfg: TrainConfig, fmt: str, split: str, where: str, names: list[str] | None):
    """One split: its set and the folder its image paths are relative to."""
    d = cfg.data
    if fmt == "coco":
        ds = read_detection("coco", where)
        root = Path(d.root.replace("{split}", split)) if d.root else Path(where).parent
        return ds, root
    if fmt == "voc":
        has_split = (Path(where) / "ImageSets" / "Main" / f"{split}.txt").is_file()
        if names is None and isinstance(d.classes, str):
            names = [
                ln.strip() for ln in Path(d.classes).read_text(encoding="utf-8").splitlines() if ln.strip()
            ]
        elif names is None and isinstance(d.classes, list):
            names = [str(c) for c in d.classes]
        from qualitas.data.detection import read_voc

        return read_voc(where, split=split if has_split else None, classes=names), Path(where)
    classes = d.classes if isinstance(d.classes, str) else None
    return read_detection("yolo", where, classes=classes), Path(where)


def read_detection_splits(cfg: TrainConfig) -> dict[str, tuple[DetectionSet, Path] | None]:
    """Every configured split (``val`` carved out of ``train`` when not given), checked."""
    d = cfg.data
    if not d.train:
        raise ConfigError(f"data.train is not set (task {cfg.task}: a COCO JSON file, VOC or YOLO folder)")
    fmt = detection_format(cfg)
    out: dict[str, tuple[DetectionSet, Path] | None] = {}
    names: list[str] | None = None
    for split in SPLITS:
        where = getattr(d, split)
        if not where:
            out[split] = None
            continue
        ds, root = _read_split(cfg, fmt, split, str(where), names)
        if split == "train":
            names = [ds.categories[i] for i in sorted(ds.categories)]
        else:
            check_same_categories(out["train"][0], ds, str(where))  # type: ignore[index]
        out[split] = (ds, root)
    if out["val"] is None:
        train_set, root = out["train"]  # type: ignore[misc]
        a, b = split_samples(train_set.images, d.split_ratios, d.split_seed)
        out["train"] = (dataclasses.replace(train_set, images=a), root)
        out["val"] = (dataclasses.replace(train_set, images=b), root)
    return out


def prepare_detection_data(
    cfg: TrainConfig, *, eval_only: bool = False, check: bool = False
) -> DetectionPrepared:
    """Read, check and wrap the configured splits. ``eval_only``: no augmentation anywhere;
    ``check``: also open every image (its size against the annotation)."""
    d = cfg.data
    if d.input_size.mode != "none":
        raise ConfigError(
            "detectors resize inside (model.min_size / model.max_size): set data.input_size.mode: none"
        )
    splits = read_detection_splits(cfg)
    train_set = splits["train"][0]  # type: ignore[index]
    labels = LabelMap.of(train_set)
    kind = cfg.task
    k = len(train_set.keypoint_names)
    if kind == "keypoints" and k == 0:
        raise ConfigError(f"{d.train}: task keypoints needs a COCO file whose category lists 'keypoints'")
    perm = flip_permutation(k, d.flip_pairs) if kind == "keypoints" else None
    if kind == "keypoints" and d.augment != "none" and perm is None:
        log.info("keypoints without data.flip_pairs: training images are not flipped")
    for split, got in splits.items():
        if got is None:
            continue
        problems = check_detection(got[0], got[1], read_sizes=check)
        if problems:
            p = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise DataError(f"{split} split: {p.file}: {p.message}{more}")
    datasets: dict[str, DetectionDataset | None] = {}
    sets: dict[str, DetectionSet | None] = {}
    counts: dict[str, list[int]] = {}
    for split, got in splits.items():
        if got is None:
            datasets[split] = sets[split] = None
            continue
        ds, root = got
        train = split == "train" and not eval_only
        transform = DetectionTransform(
            d.augment if train else "none", flip_perm=perm, keypoints=kind == "keypoints"
        )
        datasets[split] = DetectionDataset(
            ds.images, root, labels, num_keypoints=k if kind == "keypoints" else 0, transform=transform
        )
        sets[split] = ds
        c = [0] * len(labels.category_ids)
        for im in ds.images:
            for b in im.boxes:
                if b.category in labels.category_ids:
                    c[labels.label(b.category) - 1] += 1
        counts[split] = c
    return DetectionPrepared(
        kind,
        datasets,
        sets,
        labels,
        train_set.keypoint_names if kind == "keypoints" else (),
        train_set.skeleton if kind == "keypoints" else (),
        [list(p) for p in d.flip_pairs or []],
        keypoint_sigmas(k, d.keypoint_sigmas) if kind == "keypoints" else (),
        counts,
    )


class DetectionTask(QualityTask):
    """Trains a torchvision detector on its own losses; validation: COCO mAP (OKS AP for
    keypoints) over the whole split, from every rank's predictions."""

    def __init__(
        self,
        model: nn.Module,
        *,
        kind: str,
        labels: LabelMap,
        sets: dict[str, DetectionSet | None],
        sigmas: tuple[float, ...] = (),
        loss_weights: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, nn.Identity(), target="mos", **kwargs)
        self.kind = kind
        self.labels = labels
        self.sets = sets
        self.sigmas = tuple(sigmas)
        self.loss_weights = dict(loss_weights or {})
        self._dets: list[tuple[int, list]] = []

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None) -> Any:
        return self.model(images, targets)

    def _loss(self, batch: dict) -> torch.Tensor:
        losses = self.model(batch["input"], batch["target"])
        unknown = set(self.loss_weights) - set(losses)
        if unknown:
            raise ConfigError(
                f"loss.weights names {sorted(unknown)}; this detector's losses are {', '.join(sorted(losses))}"
            )
        n = int(batch["size"])
        for key, value in losses.items():
            self.log(f"train/loss_{key}", value, on_step=True, on_epoch=True, batch_size=n)
        return sum(self.loss_weights.get(k, 1.0) * v for k, v in losses.items())  # type: ignore[return-value]

    def _eval_step(self, batch: dict) -> None:
        if int(batch.get("size", 0)) == 0:
            return
        outs = self.model(batch["input"])
        for i, o in zip(batch["index"].tolist(), outs):
            self._dets.append((int(i), to_detections(o, self.labels.category_ids)))

    def on_validation_epoch_start(self) -> None:
        self._dets = []

    def on_test_epoch_start(self) -> None:
        self._dets = []

    def _finish_eval(self, stage: str) -> None:
        gathered = {
            i: d for part in _gather_objects(self._dets) for i, d in part
        }  # DDP padding: same index twice
        self._dets = []
        gt = self.sets.get(stage)
        if gt is None or (stage == "val" and self.trainer.sanity_checking):
            return
        seen = sorted(gathered)
        sub = dataclasses.replace(gt, images=[gt.images[i] for i in seen])
        figures = detection_figures(self.kind, sub, [gathered[i] for i in seen], sigmas=self.sigmas or None)
        for key in DETECTION_FIGURES[self.kind]:
            self.log(f"{stage}/{key}", float(figures[key]), prog_bar=key in ("map", "map50"), sync_dist=False)
        self.eval_results[stage] = {"figures": figures}


@dataclass
class DetectionSetup:
    """What :func:`qualitas.training.run.train` runs for a detection/keypoint config."""

    model: nn.Module
    task: DetectionTask
    datamodule: Any
    data: DetectionPrepared
    monitor: str


def _loss_weights(cfg: TrainConfig) -> dict[str, float]:
    spec = cfg.loss
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or spec.get("name") != "detector":
        raise ConfigError(
            "detectors compute their own losses (torchvision's loss dict, summed): set loss: {name: detector} "
            "or {name: detector, weights: {bbox_regression: 2.0}}"
        )
    extra = set(spec) - {"name", "weights"}
    if extra:
        raise ConfigError(f"loss '{spec['name']}' has no argument '{sorted(extra)[0]}'; valid: weights")
    weights = spec.get("weights") or {}
    if not isinstance(weights, dict) or not all(isinstance(v, (int, float)) for v in weights.values()):
        raise ConfigError("loss.weights must map loss names to numbers, e.g. {classification: 1.0}")
    return {str(k): float(v) for k, v in weights.items()}


def setup_detection(cfg: TrainConfig, run_dir: Path, *, write: bool) -> DetectionSetup:
    """Data, detector (``num_classes`` and ``num_keypoints`` from the data), task, loaders."""
    from qualitas.models import build_model
    from qualitas.training.datamodule import QualityDataModule

    if cfg.model.get("name") != "detector":
        raise ConfigError(
            f"task {cfg.task} trains model 'detector' (model.arch: fcos, ...), not '{cfg.model.get('name')}'"
        )
    weights = _loss_weights(cfg)
    monitor_name = cfg.trainer.monitor.removeprefix("val/")
    allowed = DETECTION_FIGURES[cfg.task]
    if monitor_name not in allowed:
        raise ConfigError(
            f"unknown trainer.monitor '{cfg.trainer.monitor}' for task {cfg.task}"
            f"{did_you_mean(monitor_name, allowed)}; choose one of {', '.join(allowed)}"
        )
    data = prepare_detection_data(cfg)
    kwargs = dict(cfg.model_kwargs)
    if cfg.task == "keypoints":
        kwargs.setdefault("arch", "keypoint_rcnn")
        if kwargs["arch"] != "keypoint_rcnn":
            raise ConfigError(f"task keypoints needs model.arch: keypoint_rcnn, not {kwargs['arch']}")
        k = len(data.keypoint_names)
        if int(kwargs.get("num_keypoints", k)) != k:
            raise ConfigError(
                f"model.num_keypoints is {kwargs['num_keypoints']} but the data names {k} keypoints"
            )
        kwargs["num_keypoints"] = k
    elif kwargs.get("arch") == "keypoint_rcnn":
        raise ConfigError("model.arch keypoint_rcnn is for task: keypoints")
    if "num_classes" in kwargs and int(kwargs["num_classes"]) != data.num_classes:
        raise ConfigError(
            f"model.num_classes is {kwargs['num_classes']} but the data has {data.num_classes - 1} classes "
            f"+ background = {data.num_classes} ({', '.join(data.classes[:5])})"
        )
    kwargs["num_classes"] = data.num_classes
    model = build_model("detector", **kwargs)
    task = DetectionTask(
        model,
        kind=cfg.task,
        labels=data.labels,
        sets={"val": data.sets["val"], "test": data.sets["test"]},
        sigmas=data.sigmas,
        loss_weights=weights,
        optimizer=cfg.optimizer,
        scheduler=cfg.scheduler,
        info=detection_info(cfg, model, data),
    )
    dm = QualityDataModule.from_splits(data.datasets, cfg.data, collate_fn=collate_detection)  # type: ignore[arg-type]
    if write:
        listing = {s: ds.paths if ds is not None else [] for s, ds in data.datasets.items()}
        atomic_write_text(run_dir / "splits.json", json.dumps(listing, indent=1))
        atomic_write_text(
            run_dir / "classes.json",
            json.dumps(
                {
                    "classes": data.classes,
                    "category_ids": list(data.labels.category_ids),
                    "keypoint_names": list(data.keypoint_names),
                    "skeleton": [list(p) for p in data.skeleton],
                    "counts": data.counts,
                },
                indent=1,
            ),
        )
    return DetectionSetup(model, task, dm, data, f"val/{monitor_name}")


def detection_info(cfg: TrainConfig, model: nn.Module, data: DetectionPrepared) -> dict:
    """Run info stored in every checkpoint: enough to rebuild and read the detector without
    the config (``qualitas.models.detection.load_detector``)."""
    from qualitas.models.detection import spec_to_dict

    return {
        "task": cfg.task,
        "kind": data.kind,
        "model": {"name": "detector", "kwargs": dict(model.spec.build_kwargs)},
        "spec": model.spec.to_dict(),
        "detector": spec_to_dict(model.detector_spec),
        "classes": data.classes,
        "category_ids": list(data.labels.category_ids),
        "keypoint_names": list(data.keypoint_names),
        "skeleton": [list(p) for p in data.skeleton],
        "flip_pairs": data.flip_pairs,
        "keypoint_sigmas": list(data.sigmas),
        "input_size": {"mode": "none"},
        "full_reference": False,
        "video": False,
        "target": data.kind,
        "dataset": f"{cfg.task}:{detection_format(cfg)}",
        "manifest": str(cfg.data.train),
        "split_seed": cfg.data.split_seed,
        "config": cfg.to_dict(),
    }

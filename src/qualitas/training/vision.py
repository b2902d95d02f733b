"""Classification and segmentation on the shared engine (``task: classification |
segmentation``, docs/tasks.md).

:func:`prepare_vision_data` reads the configured layout (``qualitas.data.vision``) into
train/val/test datasets; :class:`VisionTask` is :class:`~qualitas.training.task.QualityTask`
with the task's loss and torchmetrics figures instead of correlations (optimiser, warmup and
schedule, checkpoint info are inherited); :func:`setup_vision` builds model, loss, task and
data module for :func:`qualitas.training.run.train`, which runs them like every other run
(run folder, Lightning trainer, checkpoints, resume, fine-tuning, curves, metrics.json).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from qualitas.data.manifest import atomic_write_text
from qualitas.data.vision import (
    AUGMENTS,
    ClassificationDataset,
    SegmentationDataset,
    Sizing,
    VisionData,
    balanced_weights,
    check_mask,
    check_seg_sizes,
    class_counts,
    classification_transform,
    read_class_names,
    read_classification,
    read_mask,
    read_palette,
    read_segmentation,
    segmentation_transform,
    split_samples,
)
from qualitas.errors import ConfigError
from qualitas.evaluation.vision import TASK_FIGURES, build_metrics
from qualitas.registry import did_you_mean
from qualitas.training.config import DataConfig, TrainConfig
from qualitas.training.task import QualityTask

log = logging.getLogger("qualitas.training")

SPLITS = ("train", "val", "test")


@dataclass
class VisionPrepared:
    """The datasets of a classification/segmentation run and what describes their labels."""

    kind: str
    """``classification`` | ``multilabel`` | ``segmentation`` (the metric family)."""
    datasets: dict[str, Dataset | None]
    classes: list[str]
    palette: list[tuple[int, int, int]] = field(default_factory=list)
    sampler_weights: list[float] | None = None
    counts: dict[str, list[int]] = field(default_factory=dict)
    """Classification: samples per class and split."""
    ignore_index: int = 255
    size: tuple[int, int] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split_sizes(self) -> dict[str, int]:
        return {s: len(d) if d is not None else 0 for s, d in self.datasets.items()}  # type: ignore[arg-type]


def metric_kind(cfg: TrainConfig) -> str:
    if cfg.task == "segmentation":
        return "segmentation"
    return "multilabel" if cfg.data.format == "multilabel" else "classification"


def sizing_of(data: DataConfig) -> Sizing:
    s = data.input_size
    if s.mode not in ("none", "resize"):
        raise ConfigError(
            f"data.input_size.mode '{s.mode}' is for quality models; classification/segmentation use "
            "none (images as they are) or resize (size [H, W]; training crops come from data.augment)"
        )
    if s.mode == "resize" and (not s.size or len(s.size) != 2):
        raise ConfigError("data.input_size.mode resize needs input_size.size [H, W]")
    if data.augment not in AUGMENTS:
        raise ConfigError(
            f"unknown data.augment '{data.augment}'{did_you_mean(data.augment, AUGMENTS)}; "
            f"choose one of {', '.join(AUGMENTS)}"
        )
    size = (int(s.size[0]), int(s.size[1])) if s.mode == "resize" and s.size else None
    return Sizing(size, data.augment)


def read_splits(cfg: TrainConfig) -> tuple[dict[str, VisionData | None], list[str] | None]:
    """Each configured split's samples (``val`` carved out of ``train`` when not given)."""
    d = cfg.data
    if not d.train:
        raise ConfigError(
            f"data.train is not set (task {cfg.task}: a folder or list file, see docs/tasks.md)"
        )
    classes = read_class_names(d.classes)
    out: dict[str, VisionData | None] = {}
    for split in SPLITS:
        where = getattr(d, split)
        if not where:
            out[split] = None
            continue
        if cfg.task == "segmentation":
            out[split] = read_segmentation(d.format, where)
        else:
            got = read_classification(d.format, where, classes)
            if classes is None and split == "train":
                classes = got.classes  # folder names (or the largest index) define the classes
            elif classes is None:
                got = read_classification(d.format, where, out["train"].classes)  # type: ignore[union-attr]
            out[split] = got
    if out["val"] is None:
        train, val = split_samples(out["train"].samples, d.split_ratios, d.split_seed)  # type: ignore[union-attr]
        out["train"] = VisionData(train, out["train"].classes)  # type: ignore[union-attr]
        out["val"] = VisionData(val, out["train"].classes)
    return out, classes


def prepare_vision_data(
    cfg: TrainConfig, *, num_classes: int | None = None, eval_only: bool = False
) -> VisionPrepared:
    """Read, check and wrap the configured splits (errors name the file and line).

    ``eval_only``: every split gets the evaluation transform (no augmentation).
    Segmentation datasets of the test split (every split with ``eval_only``) also return
    each label mask at its own resolution (``full_mask``) for the metrics."""
    d = cfg.data
    sizing = sizing_of(d)
    splits, classes = read_splits(cfg)
    kind = metric_kind(cfg)
    if cfg.task == "segmentation":
        if classes is None:
            if num_classes is None:
                raise ConfigError(
                    "segmentation needs data.classes (a names file or list) or model.num_classes"
                )
            classes = [f"class{k}" for k in range(num_classes)]
        palette = read_palette(d.palette, len(classes))
        samples = [s for v in splits.values() if v is not None for s in v.samples]
        if d.check_media in ("header", "full"):
            check_seg_sizes(samples)
        if d.check_media == "full":
            for s in samples:
                check_mask(
                    read_mask(s.mask, palette=palette if d.palette else None, where=s.where),
                    len(classes),
                    d.ignore_index,
                    s.where,
                )
        datasets: dict[str, Dataset | None] = {
            split: (
                SegmentationDataset(
                    v.samples,
                    len(classes),
                    ignore_index=d.ignore_index,
                    palette=palette if d.palette else None,
                    transform=segmentation_transform(sizing, train=split == "train" and not eval_only),
                    # The test split (and every split of `qualitas eval`) is scored at each
                    # mask's own resolution; validation during training at the input size.
                    full_mask=eval_only or split == "test",
                )
                if v is not None
                else None
            )
            for split, v in splits.items()
        }
        return VisionPrepared(kind, datasets, classes, palette, ignore_index=d.ignore_index, size=sizing.size)
    assert classes is not None  # read_splits always resolves them for classification
    counts = {s: class_counts(v.samples, len(classes)) for s, v in splits.items() if v is not None}
    datasets = {
        split: (
            ClassificationDataset(
                v.samples,
                len(classes),
                multi_label=kind == "multilabel",
                transform=classification_transform(sizing, train=split == "train" and not eval_only),
            )
            if v is not None
            else None
        )
        for split, v in splits.items()
    }
    weights = balanced_weights(splits["train"].samples, len(classes)) if d.balanced else None  # type: ignore[union-attr]
    return VisionPrepared(kind, datasets, classes, sampler_weights=weights, counts=counts, size=sizing.size)


class VisionTask(QualityTask):
    """Trains a classifier/segmenter with ``loss(logits, target)``; validation figures from
    torchmetrics over the whole split (``TASK_FIGURES``; per-class lists in ``eval_results``)."""

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        *,
        kind: str,
        num_classes: int,
        ignore_index: int = 255,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, loss, target="mos", **kwargs)
        self.kind = kind
        self.val_metrics = build_metrics(kind, num_classes, ignore_index)
        self.test_metrics = build_metrics(kind, num_classes, ignore_index)

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x)

    def _loss(self, batch: dict) -> torch.Tensor:
        return self.loss_fn(self.model(batch["input"]).float(), batch["target"])

    def _metrics(self) -> nn.Module:
        return self.test_metrics if self.trainer.testing else self.val_metrics

    def _eval_step(self, batch: dict) -> None:
        if int(batch.get("size", 0)) == 0:
            return
        out = self.model(batch["input"]).float()
        if "full_mask" in batch:  # segmentation test split: at each mask's own resolution
            self._metrics().update_full(out, batch["full_mask"])
        else:
            self._metrics().update(out, batch["target"])
        self.log(
            "val/loss" if not self.trainer.testing else "test/loss",
            self.loss_fn(out, batch["target"]),
            on_epoch=True,
            on_step=False,
            batch_size=int(batch["size"]),
            sync_dist=True,
        )

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def _finish_eval(self, stage: str) -> None:
        metrics = self.test_metrics if stage == "test" else self.val_metrics
        figures = metrics.compute()  # torchmetrics reduces across DDP ranks
        metrics.reset()
        if stage == "val" and self.trainer.sanity_checking:
            return
        for key in TASK_FIGURES[self.kind]:
            self.log(
                f"{stage}/{key}",
                float(figures[key]),
                prog_bar=key in ("top1", "miou", "map"),
                sync_dist=False,
                rank_zero_only=False,
            )
        self.eval_results[stage] = {"figures": figures}


@dataclass
class VisionSetup:
    """What :func:`qualitas.training.run.train` runs for a classification/segmentation config."""

    model: nn.Module
    task: VisionTask
    datamodule: Any
    data: VisionPrepared
    monitor: str


def _loss_spec(cfg: TrainConfig, kind: str, ignore_index: int) -> Any:
    spec = cfg.loss
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict) and spec.get("name") == "seg_cross_entropy" and "ignore_index" not in spec:
        spec = {**spec, "ignore_index": ignore_index}
    if kind == "multilabel" and isinstance(spec, dict) and spec.get("name") == "cross_entropy":
        spec = {**spec, "name": "bce"}  # the task default; multi-label targets need per-class sigmoids
        spec.pop("class_weights", None)
    return spec


def setup_vision(cfg: TrainConfig, run_dir: Path, *, write: bool) -> VisionSetup:
    """Data, model (``num_classes`` from the data unless the config says), loss, task, loaders."""
    from qualitas.losses import build_loss
    from qualitas.models import build_model
    from qualitas.training.datamodule import QualityDataModule

    kwargs = dict(cfg.model_kwargs)
    data = prepare_vision_data(cfg, num_classes=kwargs.get("num_classes"))
    if "num_classes" in kwargs and int(kwargs["num_classes"]) != data.num_classes:
        raise ConfigError(
            f"model.num_classes is {kwargs['num_classes']} but the data has {data.num_classes} classes "
            f"({', '.join(data.classes[:5])}{', ...' if data.num_classes > 5 else ''})"
        )
    kwargs["num_classes"] = data.num_classes
    if data.kind == "multilabel":
        kwargs.setdefault("multi_label", True)
    model = build_model(cfg.model["name"], **kwargs)
    out_kind = {"classification": "classes", "multilabel": "multilabel", "segmentation": "segmentation"}[
        data.kind
    ]
    if model.spec.output != out_kind:
        raise ConfigError(
            f"model '{cfg.model['name']}' outputs '{model.spec.output}' but task {cfg.task} "
            f"({data.kind}) needs a '{out_kind}' model (classifier / segmenter)"
        )
    loss = build_loss(_loss_spec(cfg, data.kind, data.ignore_index))
    monitor_name = cfg.trainer.monitor.removeprefix("val/")
    allowed = (*TASK_FIGURES[data.kind], "loss")
    if monitor_name not in allowed:
        raise ConfigError(
            f"unknown trainer.monitor '{cfg.trainer.monitor}' for task {cfg.task}"
            f"{did_you_mean(monitor_name, allowed)}; choose one of {', '.join(allowed)}"
        )
    info = vision_info(cfg, model, data)
    task = VisionTask(
        model,
        loss,
        kind=data.kind,
        num_classes=data.num_classes,
        ignore_index=data.ignore_index,
        optimizer=cfg.optimizer,
        scheduler=cfg.scheduler,
        info=info,
    )
    dm = QualityDataModule.from_splits(data.datasets, cfg.data, train_weights=data.sampler_weights)
    if write:
        listing = {s: getattr(ds, "paths", []) if ds is not None else [] for s, ds in data.datasets.items()}
        atomic_write_text(run_dir / "splits.json", json.dumps(listing, indent=1))
        atomic_write_text(
            run_dir / "classes.json",
            json.dumps(
                {"classes": data.classes, "palette": [list(c) for c in data.palette], "counts": data.counts},
                indent=1,
            ),
        )
    return VisionSetup(model, task, dm, data, f"val/{monitor_name}")


def vision_info(cfg: TrainConfig, model: nn.Module, data: VisionPrepared) -> dict:
    """Run info stored in every checkpoint (as :func:`qualitas.training.run.run_info`)."""
    size = {"mode": "resize", "size": list(data.size)} if data.size else {"mode": "none"}
    return {
        "task": cfg.task,
        "kind": data.kind,
        "model": {"name": cfg.model["name"], "kwargs": dict(model.spec.build_kwargs)},
        "spec": model.spec.to_dict(),
        "classes": list(data.classes),
        "palette": [list(c) for c in data.palette],
        "ignore_index": data.ignore_index,
        "input_size": size,
        "full_reference": False,
        "video": False,
        "target": data.kind,
        "dataset": f"{cfg.task}:{cfg.data.format}",
        "manifest": str(cfg.data.train),
        "split_seed": cfg.data.split_seed,
        "config": cfg.to_dict(),
    }

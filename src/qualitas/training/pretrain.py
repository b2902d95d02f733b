"""``qualitas pretrain``: self-supervised pretraining of a model's backbone on unlabelled media.

The backbone is the one ``model`` builds (any timm backbone, random or ``pretrained: true``
ImageNet EfficientNet-Lite as the start), so the downstream model can load it unchanged.
Methods (``pretrain.method``), with their heads, losses and views from maintained libraries:

* ``simclr`` — content-aware: lightly's ``SimCLRProjectionHead``, ``NTXentLoss`` and SimCLR
  augmentations (Chen et al. 2020).
* ``contrique`` — quality-aware (CONTRIQUE, Madhusudana et al. 2022): the contrastive classes
  are the synthetic distortion classes of ``qualitas data synth`` (type x level, plus
  pristine); every view in the batch with the same class is a positive. Loss: the supervised
  contrastive loss of pytorch-metric-learning (``SupConLoss``, Khosla et al. 2020: CONTRIQUE's
  modified NT-Xent with several positives per anchor), head: lightly's SimCLR projection head.

The run directory is the one ``qualitas train`` writes (``config.yaml``, ``train.log``,
``checkpoints/last.ckpt`` for ``--resume``, ``history.json``, ``training_curves.png``,
``metrics.json``), plus the clean backbone:

    backbone.pt      the backbone's weights only (timm parameter names; no projection head,
                     no optimiser state): ``torch.load(..., weights_only=True)`` gives a flat
                     ``{name: tensor}``; any downstream ``model.pretrained_path`` (the file
                     or the run directory) loads it, mismatched shapes skipped and reported
    backbone.json    what it is: backbone name, pool, normalisation, method, epochs, data
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from qualitas.data.manifest import atomic_write_text
from qualitas.errors import ConfigError, DependencyError, UsageError
from qualitas.registry import did_you_mean
from qualitas.training.config import OptimizerConfig, SchedulerConfig, TrainConfig

log = logging.getLogger("qualitas.training")

PRETRAIN_METHODS = ("simclr", "contrique")
BACKBONE_FILE = "backbone.pt"
BACKBONE_CARD = "backbone.json"
BACKBONE_PREFIX = "features.backbone.net."
"""Where the timm network sits in :class:`PretrainTask`'s state dict."""


def _lightly():
    try:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead
    except ImportError:
        raise DependencyError("pretraining needs lightly: pip install 'qualitas[pretrain]'") from None
    return NTXentLoss, SimCLRProjectionHead


def _world_size() -> int:
    ok = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_world_size() if ok else 1


def build_loss(method: str, temperature: float) -> nn.Module:
    """``(z (2B, D), labels (2B,)) -> loss``; views ``i`` and ``i + B`` are one image's pair."""
    ntxent, _ = _lightly()
    if method == "simclr":
        return _PairLoss(ntxent(temperature=temperature, gather_distributed=True))
    try:
        from pytorch_metric_learning.losses import SupConLoss
    except ImportError:
        raise DependencyError(
            "pretrain.method=contrique needs pytorch-metric-learning: pip install 'qualitas[pretrain]'"
        ) from None
    return _SupCon(SupConLoss(temperature=temperature))


class _PairLoss(nn.Module):
    """lightly's NT-Xent on the two halves (positives: the other view of the same image)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a, b = z.chunk(2)
        return self.loss(a, b)


class _SupCon(nn.Module):
    """pytorch-metric-learning's supervised contrastive loss; under DDP its distributed
    wrapper gathers every rank's embeddings and labels (negatives from the global batch)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss
        self._wrapped: nn.Module | None = None

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if _world_size() > 1:
            if self._wrapped is None:
                from pytorch_metric_learning.utils.distributed import DistributedLossWrapper

                self._wrapped = DistributedLossWrapper(self.loss)
            return self._wrapped(z, labels)
        return self.loss(z, labels)


class PretrainTask(L.LightningModule):
    """Backbone features -> projection head -> contrastive loss over two views per image.

    Args:
        features: ``(N, 3, H, W)`` in [0, 1] -> ``(N, C)`` (a qualitas ``ImageFeatures``: the
            normalisation and backbone of the downstream model).
        projection: ``(N, C) -> (N, D)`` (dropped from the clean backbone).
        loss: ``(z (2B, D), labels (2B,)) -> scalar``.
    """

    def __init__(
        self,
        features: nn.Module,
        projection: nn.Module,
        loss: nn.Module,
        *,
        optimizer: OptimizerConfig = OptimizerConfig(),
        scheduler: SchedulerConfig = SchedulerConfig(),
        info: dict | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.projection = projection
        self.loss_fn = loss
        self.opt_cfg = optimizer
        self.sched_cfg = scheduler
        self.info = dict(info or {})
        self.skipped_total = 0

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        skipped = int(batch.get("skipped", 0))
        self.skipped_total += skipped
        n = int(batch.get("size", 0))
        if n < 2:
            return None  # a contrastive loss needs at least two images
        views = batch["views"]  # (B, 2, 3, H, W)
        x = torch.cat([views[:, 0], views[:, 1]])
        labels = batch["label"].long().repeat(2)
        z = self.projection(self.features(x))
        loss = self.loss_fn(z, labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        return loss

    def configure_optimizers(self) -> Any:
        from qualitas.training.task import configure_optimization

        mult = self.opt_cfg.backbone_lr_mult
        back = [p for p in self.features.parameters() if p.requires_grad]
        head = list(self.projection.parameters())
        groups = [{"params": back, "lr": self.opt_cfg.lr * mult}, {"params": head, "lr": self.opt_cfg.lr}]
        return configure_optimization(groups, self.opt_cfg, self.sched_cfg, self.trainer)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["qualitas"] = self.info  # plain data: loads with weights_only=True


def backbone_state(
    state_dict: dict[str, torch.Tensor], prefix: str = BACKBONE_PREFIX
) -> dict[str, torch.Tensor]:
    """The backbone's tensors of a pretraining state dict (the task's, or a Lightning
    checkpoint's ``state_dict``), under their timm names: the projection head, loss state and
    anything else outside ``prefix`` are dropped (``qualitas checkpoint strip --keep``)."""
    from qualitas.training.checkpoint_tools import strip_state

    return {k: v.detach().clone().cpu() for k, v in strip_state(state_dict, keep_prefix=prefix).items()}


def write_backbone(run_dir: Path, state: dict[str, torch.Tensor], card: dict) -> Path:
    """``backbone.pt`` (flat ``{name: tensor}``) and ``backbone.json``, atomically."""
    path = run_dir / BACKBONE_FILE
    tmp = run_dir / f".{BACKBONE_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    atomic_write_text(run_dir / BACKBONE_CARD, json.dumps(card, indent=1))
    return path


def _source_paths(cfg: TrainConfig, run_dir: Path) -> tuple[list[Path], dict]:
    from qualitas.data.unlabelled import list_media, video_frames

    p = cfg.pretrain
    if not p.source:
        raise ConfigError("pretrain.source is not set (a folder or a manifest of unlabelled images/videos)")
    images, videos = list_media(p.source, cfg.data.root)
    frames: list[Path] = []
    if videos and p.frames_per_video:
        frames_dir = Path(p.frames_dir).expanduser() if p.frames_dir else run_dir / "frames"
        frames = video_frames(videos, frames_dir, p.frames_per_video, progress=cfg.trainer.progress_bar)
    paths = images + frames
    if len(paths) < 2:
        raise ConfigError(
            f"pretrain.source '{p.source}': {len(paths)} images or frames found, need at least 2"
        )
    return paths, {"images": len(images), "videos": len(videos), "frames": len(frames)}


def pretrain(cfg: TrainConfig, *, out: str | Path | None = None, resume: str | Path | None = None):
    """Pretrain ``cfg.model``'s backbone as ``cfg.pretrain`` says; returns ``RunResult``.

    ``resume``: a pretraining run dir or checkpoint (weights, optimiser, schedule and epoch).
    """
    from torch.utils.data import DataLoader

    from qualitas.data.base import collate_skip
    from qualitas.data.unlabelled import VIEWS, UnlabelledDataset
    from qualitas.models import build_model
    from qualitas.models.iqa import NRIQAModel
    from qualitas.training.callbacks import HistoryRecorder, ThroughputMonitor
    from qualitas.training.run import (
        RunResult,
        _is_global_zero,
        _library_chatter_to,
        _plot_curves,
        build_trainer,
        open_run_folder,
        read_checkpoint,
        resolve_checkpoint,
        run_dir_of,
    )

    p = cfg.pretrain
    if p.method not in PRETRAIN_METHODS:
        raise ConfigError(
            f"unknown pretrain.method '{p.method}'{did_you_mean(p.method, PRETRAIN_METHODS)}; "
            f"choose one of {', '.join(PRETRAIN_METHODS)}"
        )
    _, head_cls = _lightly()
    resume_ckpt = None
    if resume is not None:
        resume_ckpt = resolve_checkpoint(resume, prefer="last")
        state = read_checkpoint(resume_ckpt)
        if (state.get("qualitas") or {}).get("kind") != "pretrain":
            raise UsageError(f"{resume_ckpt}: not a pretraining checkpoint (use qualitas train --resume)")
        del state
        if out is None:
            out = run_dir_of(resume_ckpt)
    L.seed_everything(cfg.run.seed, workers=True, verbose=False)
    model = build_model(cfg.model["name"], **cfg.model_kwargs)
    if not isinstance(model, NRIQAModel):
        raise ConfigError(
            f"pretrain needs an image model with one 3-channel backbone (model.name: nr_iqa), "
            f"got '{cfg.model['name']}'; its backbone loads into the other models afterwards"
        )
    features = model.features
    if getattr(features.backbone, "freeze", False):
        raise ConfigError("model.freeze_backbone is true: a frozen backbone cannot be pretrained")
    views = (
        VIEWS[p.method](p.crop) if p.method == "simclr" else VIEWS[p.method](p.crop, p.distortions, p.levels)
    )
    with open_run_folder(cfg, out) as folder:
        run_dir, handler = folder.path, folder.handler
        paths, counts = _source_paths(cfg, run_dir)
        if _is_global_zero():
            atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        dataset = UnlabelledDataset(paths, views, max_side=p.max_side, cache=len(paths) <= 4096)
        loader = DataLoader(
            dataset,
            batch_size=cfg.data.batch_size,
            shuffle=True,
            drop_last=len(dataset) > cfg.data.batch_size,  # equal batches: a stable contrastive loss
            num_workers=cfg.data.num_workers,
            collate_fn=collate_skip,
            persistent_workers=cfg.data.num_workers > 0,
        )
        info = {
            "kind": "pretrain",
            "method": p.method,
            "backbone": str(getattr(features.backbone, "name", "")),
            "config": cfg.to_dict(),
        }
        projection = head_cls(
            input_dim=int(features.out_features), hidden_dim=p.hidden_dim, output_dim=p.projection_dim
        )
        task = PretrainTask(
            features,
            projection,
            build_loss(p.method, p.temperature),
            optimizer=cfg.optimizer,
            scheduler=cfg.scheduler,
            info=info,
        )
        throughput = ThroughputMonitor()
        cbs = [throughput, HistoryRecorder(run_dir), _EpochTimer()]
        t0 = time.perf_counter()
        with _library_chatter_to(handler):
            # No validation in self-supervised training: "best" is the newest epoch (monitor the step),
            # so best.ckpt and last.ckpt (for --resume) both hold the final state.
            trainer = build_trainer(cfg, run_dir, cbs, monitor="step", mode="max")
            folder.started = True
            trainer.fit(task, train_dataloaders=loader, ckpt_path=resume_ckpt, weights_only=True)
        seconds = time.perf_counter() - t0
        losses = cbs[2].losses
        result: dict = {
            "method": p.method,
            "backbone": info["backbone"],
            "epochs": int(trainer.current_epoch),
            "loss_first_epoch": losses[0] if losses else None,
            "loss_last_epoch": losses[-1] if losses else None,
            "loss_per_epoch": losses,
            "seconds": round(seconds, 1),
            "seconds_per_epoch": cbs[2].seconds,
            "data": {**counts, "samples": len(dataset)},
            "skipped_samples": int(task.skipped_total),
        }
        if trainer.is_global_zero:
            bb = features.backbone
            card = {
                "backbone": info["backbone"],
                "pool": getattr(bb, "pool", None),
                "mean": list(getattr(bb, "mean", ())),
                "std": list(getattr(bb, "std", ())),
                "started_from": getattr(bb, "weights_source", "") or "random init",
                "method": p.method,
                "epochs": result["epochs"],
                "images": len(dataset),
                "model": {"name": cfg.model["name"], **cfg.model_kwargs},
            }
            state = backbone_state(task.state_dict())
            result["backbone_file"] = str(write_backbone(run_dir, state, card))
            atomic_write_text(run_dir / "metrics.json", json.dumps(result, indent=1))
            _plot_curves(run_dir)
            log.info(
                "pretrain run %s: loss %.4f -> %.4f over %d epochs; clean backbone %s",
                run_dir,
                result["loss_first_epoch"] or float("nan"),
                result["loss_last_epoch"] or float("nan"),
                result["epochs"],
                result["backbone_file"],
            )
        return RunResult(run_dir, result)


class _EpochTimer(L.Callback):
    """Mean training loss and wall seconds of each epoch (for metrics.json and the benchmark)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.seconds: list[float] = []
        self._t = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(round(time.perf_counter() - self._t, 2))
        value = trainer.callback_metrics.get("train/loss_epoch")
        if value is not None:
            self.losses.append(float(value))

"""The Lightning task: loss, optimiser, schedule and validation metrics around a plain model.

The network (``qualitas.models``) knows nothing about training; the data module owns
data. Validation runs over the whole validation set: every rank predicts its share, the
predictions are gathered with their dataset indices, the DistributedSampler's padding
duplicates are dropped (so every item counts exactly once), clips are averaged per video,
and SROCC/KROCC/PLCC/RMSE (raw and logistic-fitted) are computed once on the full set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from qualitas.data.scores import ScoreNorm
from qualitas.errors import ConfigError
from qualitas.models.heads import output_to_score
from qualitas.training.config import OptimizerConfig, SchedulerConfig

TARGETS = ("mos", "votes", "rank")
LOWER_IS_BETTER = ("rmse", "rmse_fitted", "loss")
FIGURES = ("srocc", "krocc", "plcc", "rmse", "srocc_fitted", "krocc_fitted", "plcc_fitted", "rmse_fitted")
"""Validation figures (qualitas.evaluation.evaluate); any can be ``trainer.monitor``."""


def lr_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    name: str = "cosine",
    warmup_start: float = 0.01,
    min_lr: float = 0.0,
    step_size: int = 1,
    gamma: float = 0.1,
) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based).

    Linear warmup from ``warmup_start`` to 1 over ``warmup_steps``, then ``constant``,
    ``cosine`` (down to ``min_lr`` at ``total_steps``) or ``step`` (``gamma`` every
    ``step_size`` steps).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return warmup_start + (1.0 - warmup_start) * step / warmup_steps
    t = step - warmup_steps
    if name == "constant":
        return 1.0
    if name == "step":
        return gamma ** (t // max(1, step_size))
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, t / span)
    return min_lr + (1.0 - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def metric_mode(monitor: str) -> str:
    """``min`` for error-like metrics, ``max`` for correlations."""
    return "min" if monitor.split("/")[-1] in LOWER_IS_BETTER else "max"


def dedupe_and_aggregate(
    index: torch.Tensor, item: torch.Tensor, pred: torch.Tensor, mos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop repeated dataset indices (DDP padding), then average predictions per item.

    Inputs are 1-D and aligned. Returns ``(items, pred_mean, mos, unique_index)`` with
    items sorted ascending.
    """
    order = torch.argsort(index, stable=True)
    index, item, pred, mos = index[order], item[order], pred[order], mos[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    index, item, pred, mos = index[keep], item[keep], pred[keep], mos[keep]
    items, inverse = torch.unique(item, sorted=True, return_inverse=True)
    count = torch.zeros(len(items), dtype=torch.float64).index_add_(
        0, inverse, torch.ones_like(pred, dtype=torch.float64)
    )
    mean = torch.zeros(len(items), dtype=torch.float64).index_add_(0, inverse, pred.double()) / count
    item_mos = torch.zeros(len(items), dtype=torch.float64).index_put_((inverse,), mos.double())
    return items, mean, item_mos, index


def configure_optimization(
    groups: list[dict], cfg: OptimizerConfig, s: SchedulerConfig, trainer: L.Trainer
) -> dict:
    """Optimiser and per-step schedule (warmup, then constant/cosine/step) for parameter
    ``groups``: Lightning's ``configure_optimizers`` answer, shared by training and pretraining."""
    if cfg.name == "adam":
        opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))
    elif cfg.name == "adamw":
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))
    elif cfg.name == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    else:
        raise ConfigError(f"unknown optimizer '{cfg.name}'; choose one of adam, adamw, sgd")
    if s.name not in ("constant", "cosine", "step"):
        raise ConfigError(f"unknown scheduler '{s.name}'; choose one of constant, cosine, step")
    total = int(trainer.estimated_stepping_batches)
    max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    per_epoch = max(1, total // max_epochs)
    kwargs = {
        "total_steps": total,
        "warmup_steps": round(s.warmup_epochs * per_epoch),
        "name": s.name,
        "warmup_start": s.warmup_start,
        "min_lr": s.min_lr,
        "step_size": max(1, round(s.step_epochs * per_epoch)),
        "gamma": s.gamma,
    }

    def factor(step: int) -> float:
        return lr_factor(step, **kwargs)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _gather_objects(obj: Any) -> list[Any]:
    """All ranks' ``obj`` (a list with one entry per rank; ``[obj]`` without DDP)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


class QualityTask(L.LightningModule):
    """Trains ``model`` with ``loss`` on ``target`` (mos | votes | rank).

    Args:
        model: a qualitas model (plain ``nn.Module`` with ``spec`` and ``bins``).
        loss: ``loss(pred, target)``; for ``rank``, ``loss(score_better, score_worse)``.
        target: what the loss compares with: normalised MOS, vote histograms, or pairs
            (from the loss's ``input_kind``: score -> mos, distribution -> votes, pair -> rank).
        optimizer, scheduler: typed config sections.
        score_norm: MOS normalisation (inverted before any figure is reported).
        evaluate_fn: ``(pred, mos) -> dict`` of figures (qualitas.evaluation.evaluate).
        info: plain-data run information stored in every checkpoint (for ``load_trained``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        *,
        target: str = "mos",
        optimizer: OptimizerConfig = OptimizerConfig(),
        scheduler: SchedulerConfig = SchedulerConfig(),
        score_norm: ScoreNorm = ScoreNorm(),
        evaluate_fn: Callable[[torch.Tensor, torch.Tensor], dict] | None = None,
        info: dict | None = None,
    ) -> None:
        super().__init__()
        if target not in TARGETS:
            raise ConfigError(f"unknown target '{target}'; choose one of {', '.join(TARGETS)}")
        self.model = model
        self.loss_fn = loss
        self.target = target
        self.opt_cfg = optimizer
        self.sched_cfg = scheduler
        self.score_norm = score_norm
        self.evaluate_fn = evaluate_fn
        self.info = dict(info or {})
        spec = getattr(model, "spec", None)
        self.full_reference = bool(getattr(spec, "full_reference", False))
        self.distribution = getattr(spec, "output", "score") == "distribution"
        # Dense outputs (importance grids, docs/importance.md) are evaluated per item against
        # the target grid: "pred" holds the item's block SROCC, "mos" its top-20% IoU.
        self.dense = str(getattr(spec, "output", "score")).startswith("grid")
        self._eval_buffer: list[dict[str, torch.Tensor]] = []
        self.eval_results: dict[str, dict] = {}
        """Last gathered evaluation per stage: indices, items, predictions, ranks."""
        self.skipped_total = 0

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, ref) if self.full_reference else self.model(x)

    def _raw(self, batch: dict, key: str = "input") -> torch.Tensor:
        return self(batch[key], batch.get("ref")) if key == "input" else self(batch[key])

    def to_mos(self, out: torch.Tensor) -> torch.Tensor:
        """Model output -> scores in MOS units ``(B,)``, float32."""
        bins = self.model.bins if out.ndim == 2 else None
        return output_to_score(out, bins, scale=self.score_norm.scale, shift=self.score_norm.shift)

    def _score(self, out: torch.Tensor) -> torch.Tensor:
        """Model output as scores ``(B,)``: distribution heads give their expected score."""
        return output_to_score(out, self.model.bins if out.ndim == 2 else None)

    def _loss(self, batch: dict) -> torch.Tensor:
        if self.target == "rank":
            better, worse = self._raw(batch, "better"), self._raw(batch, "worse")
            return self.loss_fn(self._score(better), self._score(worse))
        out = self._raw(batch).float()
        if self.target == "votes":
            if "votes" not in batch:
                raise ConfigError("a distribution loss needs 'votes' histograms in every manifest row")
            return self.loss_fn(out, batch["votes"].float())
        if out.ndim == 2:  # score loss on a distribution head: expected score vs raw MOS
            return self.loss_fn(self._score(out), batch["mos"].float())
        return self.loss_fn(out, batch["target"].float())

    # ------------------------------------------------------------------ steps

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        skipped = int(batch.get("skipped", 0))
        if skipped:
            self.skipped_total += skipped
            self.log("train/skipped", float(self.skipped_total), on_step=True, on_epoch=False)
        n = int(batch.get("size", 0))
        if n == 0:
            return None  # every sample failed to decode: nothing to learn from
        loss = self._loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        return loss

    def _eval_step(self, batch: dict) -> None:
        if int(batch.get("size", 0)) == 0:
            return
        out = self._raw(batch)
        if self.dense:
            from qualitas.evaluation.importance import item_figures

            fig = item_figures(out, batch["target"])
            self._eval_buffer.append(
                {
                    "index": batch["index"].detach().cpu().long(),
                    "item": batch["item"].detach().cpu().long(),
                    "pred": fig["srocc"],
                    "mos": fig["topk_iou"],
                }
            )
            return
        self._eval_buffer.append(
            {
                "index": batch["index"].detach().cpu().long(),
                "item": batch["item"].detach().cpu().long(),
                "pred": self.to_mos(out).detach().cpu().double(),
                "mos": batch["mos"].detach().cpu().double(),
            }
        )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_start(self) -> None:
        self._eval_buffer = []

    def on_test_epoch_start(self) -> None:
        self._eval_buffer = []

    def _finish_eval(self, stage: str) -> None:
        local = {
            key: (torch.cat([b[key] for b in self._eval_buffer]) if self._eval_buffer else torch.zeros(0))
            for key in ("index", "item", "pred", "mos")
        }
        local["rank"] = torch.full((len(local["index"]),), self.global_rank, dtype=torch.long)
        self._eval_buffer = []
        parts = _gather_objects(local)
        merged = {
            k: torch.cat([p[k] for p in parts]).to(torch.float64 if k in ("pred", "mos") else torch.long)
            for k in local
        }
        # The rank that predicted each unique index (first occurrence after sorting).
        order = torch.argsort(merged["index"], stable=True)
        idx_sorted = merged["index"][order]
        first = torch.ones_like(idx_sorted, dtype=torch.bool)
        first[1:] = idx_sorted[1:] != idx_sorted[:-1]
        items, pred, mos, uniq = dedupe_and_aggregate(
            merged["index"], merged["item"], merged["pred"], merged["mos"]
        )
        self.eval_results[stage] = {
            "index": uniq.tolist(),
            "rank": merged["rank"][order][first].tolist(),
            "item": items.tolist(),
            "pred": pred.tolist(),
            "mos": mos.tolist(),
            "received": int(len(merged["index"])),
        }
        if stage == "val" and self.trainer.sanity_checking:
            return
        figures = self._figures(pred, mos)
        for key, value in figures.items():
            # Identical on every rank already (computed on the gathered set): no sync.
            self.log(
                f"{stage}/{key}",
                value,
                prog_bar=key in ("srocc", "plcc"),
                sync_dist=False,
                rank_zero_only=False,
            )
        self.eval_results[stage]["figures"] = figures

    def _figures(self, pred: torch.Tensor, mos: torch.Tensor) -> dict[str, float]:
        if self.dense:  # per-item block SROCC and top-k IoU, averaged over items
            # Only the figures that mean something for grids (no NaN placeholders: the
            # metrics end up in JSON model cards).
            return {"n": float(len(pred)), "srocc": float(pred.nanmean()), "topk_iou": float(mos.nanmean())}
        ok = torch.isfinite(mos) & torch.isfinite(pred)
        pred, mos = pred[ok], mos[ok]
        out: dict[str, float] = {"n": float(len(pred))}
        if len(pred) < 3 or self.evaluate_fn is None:
            # Too few items for a correlation: NaN keeps the monitored key present (a NaN
            # never becomes the best checkpoint).
            out.update(dict.fromkeys(FIGURES, float("nan")))
            return out
        figures = self.evaluate_fn(pred.numpy(), mos.numpy())
        for key, value in figures.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = float(value)
        return out

    def on_validation_epoch_end(self) -> None:
        self._finish_eval("val")

    def on_test_epoch_end(self) -> None:
        self._finish_eval("test")

    # ------------------------------------------------------------------ optimisation

    def _param_groups(self) -> list[dict]:
        mult = self.opt_cfg.backbone_lr_mult
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if mult == 1.0:
            return [{"params": [p for _, p in params], "lr": self.opt_cfg.lr}]
        back = [p for n, p in params if ".backbone." in f".{n}"]
        rest = [p for n, p in params if ".backbone." not in f".{n}"]
        return [{"params": back, "lr": self.opt_cfg.lr * mult}, {"params": rest, "lr": self.opt_cfg.lr}]

    def configure_optimizers(self) -> Any:
        return configure_optimization(self._param_groups(), self.opt_cfg, self.sched_cfg, self.trainer)

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain data only, so the checkpoint loads with torch.load(weights_only=True).
        checkpoint["qualitas"] = self.info

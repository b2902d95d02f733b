"""Callbacks: throughput and data-wait share, per-epoch history, prediction files, visdom."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from qualitas.files import atomic_write_text

log = logging.getLogger("qualitas.training")


class ThroughputMonitor(L.Callback):
    """Samples/s on the progress bar; per epoch, samples/s and the share of time spent
    waiting for data (``train/data_wait``: time between the end of one step and the start of
    the next, over the whole step time; the first batch of an epoch is left out, as it
    includes the workers' start-up)."""

    def __init__(self) -> None:
        self._reset()
        self.history: list[dict[str, float]] = []

    def _reset(self) -> None:
        self.wait = 0.0
        self.busy = 0.0
        self.samples = 0
        self._t_end: float | None = None
        self._t_start = 0.0
        self._ema: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._t_end is not None:
            self.wait += now - self._t_end
        self._t_start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        n = int(batch.get("size", 0)) if isinstance(batch, dict) else 0
        if self._t_end is not None:  # skip the epoch's first batch (worker start-up)
            self.busy += now - self._t_start
            self.samples += n
            dt = now - self._t_start + (self._t_start - self._t_end)
            if dt > 0 and n:
                rate = n / dt
                self._ema = rate if self._ema is None else 0.9 * self._ema + 0.1 * rate
                pl_module.log(
                    "sps", self._ema * trainer.world_size, prog_bar=True, on_step=True, on_epoch=False
                )
        self._t_end = now

    def summary(self) -> dict[str, float]:
        total = self.wait + self.busy
        return {
            "samples_per_s": self.samples / total if total > 0 else float("nan"),
            "data_wait": self.wait / total if total > 0 else float("nan"),
        }

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        s = self.summary()
        self.history.append(s)
        if all(math.isfinite(v) for v in s.values()):
            pl_module.log("train/samples_per_s", s["samples_per_s"] * trainer.world_size, on_epoch=True)
            pl_module.log("train/data_wait", s["data_wait"], on_epoch=True)


def _plain(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = float(v)
        if isinstance(v, (int, float)):
            out[k] = float(v)
    return out


class HistoryRecorder(L.Callback):
    """Keeps every epoch's logged figures; writes ``history.json`` in the run dir."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row = {"epoch": float(trainer.current_epoch), "step": float(trainer.global_step)}
        row.update(_plain(trainer.callback_metrics))
        self.history.append(row)
        if trainer.is_global_zero:
            atomic_write_text(self.run_dir / "history.json", json.dumps(self.history, indent=1))

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))


class PredictionWriter(L.Callback):
    """Writes the gathered per-item predictions of each evaluation (global rank 0) to
    ``predictions_<stage>.jsonl``: ``item``, ``path``, ``pred``, ``mos`` and the ``rank``
    that predicted it."""

    def __init__(self, run_dir: str | Path, paths: dict[str, Sequence[str]]) -> None:
        self.run_dir = Path(run_dir)
        self.paths = paths

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        res = getattr(pl_module, "eval_results", {}).get(stage)
        if res is None or not trainer.is_global_zero or trainer.sanity_checking:
            return
        names = self.paths.get(stage, [])
        lines = []
        for item, pred, mos in zip(res["item"], res["pred"], res["mos"]):
            row = {
                "item": item,
                "path": names[item] if item < len(names) else None,
                "pred": pred,
                "mos": mos if math.isfinite(mos) else None,
            }
            lines.append(json.dumps(row))
        coverage = {"indices": res["index"], "ranks": res["rank"], "received": res["received"]}
        atomic_write_text(self.run_dir / f"predictions_{stage}.jsonl", "\n".join(lines) + "\n")
        atomic_write_text(self.run_dir / f"coverage_{stage}.json", json.dumps(coverage))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "test")


class VisdomLogger(L.Callback):
    """Plots the per-epoch figures on a running visdom server (optional dependency)."""

    def __init__(self, env: str, port: int = 8097) -> None:
        import visdom  # optional: checked by the caller

        self.viz = visdom.Visdom(env=env, port=port, raise_exceptions=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for key, value in _plain(trainer.callback_metrics).items():
            self.viz.line(X=[trainer.current_epoch], Y=[value], win=key, update="append", opts={"title": key})

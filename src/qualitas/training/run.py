"""Training runs: :func:`train` (Lightning), resume, fine-tuning, repeated splits. Data
preparation and the run record live in :mod:`qualitas.training.prepare`, the run folder's
lifecycle in :mod:`qualitas.training.folders`, checkpoints in
:mod:`qualitas.models.checkpoint` (all re-exported here, their old home).

A run directory holds::

    config.yaml           the resolved config (after -o overrides)
    checkpoints/best.ckpt best by trainer.monitor (default val SROCC); last.ckpt; periodic ones
    metrics.json          final val (and test) figures of the best checkpoint
    history.json          per-epoch logged figures; training_curves.png
    predictions_val.jsonl / predictions_test.jsonl   per-item predictions (MOS units)
    splits.json           the paths of each split; data_problems.json when rows were bad
    tb/ csv/ train.log    TensorBoard and CSV logs, text log
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from qualitas.data.manifest import read_manifest
from qualitas.errors import ConfigError, UsageError
from qualitas.files import atomic_write_text
from qualitas.models.checkpoint import (  # noqa: F401  (re-exported: their old home)
    RunInfo,
    load_matching_weights,
    load_run,
    load_trained,
    model_state,
    read_checkpoint,
    resolve_checkpoint,
    run_dir_of,
)
from qualitas.registry import did_you_mean
from qualitas.training.config import TrainConfig, load_config
from qualitas.training.folders import (  # noqa: F401  (re-exported: their old home)
    RunFolder,
    RunResult,
    _file_logging,
    _library_chatter_to,
    _remove_unstarted_run,
    new_run_dir,
    open_run_folder,
)
from qualitas.training.prepare import (  # noqa: F401  (re-exported: their old home)
    PreparedData,
    _is_global_zero,
    check_model_data,
    choose_dataset,
    data_paths,
    input_size_of,
    prepare_data,
    run_info,
    sampling_of,
)

log = logging.getLogger("qualitas.training")

TRAIN_METHODS = ("gradient", "probe")
"""``gradient``: Lightning optimisation of the configured loss; ``probe``: a closed-form ridge
head on a frozen backbone's features (:mod:`qualitas.training.probe`)."""
TARGET_OF_INPUT_KIND = {"score": "mos", "distribution": "votes", "pair": "rank"}


# --------------------------------------------------------------------------- data


# --------------------------------------------------------------------------- checkpoints


# The checkpoint helpers live in qualitas.models.checkpoint (imported above).


# --------------------------------------------------------------------------- training


def _figures_of(results: list, prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for res in results or []:
        for k, v in res.items():
            if k.startswith(prefix + "/"):
                out[k.split("/", 1)[1]] = float(v)
    return out


def build_trainer(cfg: TrainConfig, run_dir: Path, callbacks: list, *, monitor: str, mode: str):
    """The Lightning Trainer with the run's loggers and checkpoint callbacks."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    t = cfg.trainer
    ckpt_dir = run_dir / "checkpoints"
    cbs = list(callbacks)
    cbs.append(
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=True,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
    )
    if t.checkpoint_every_n_epochs > 0:
        cbs.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="epoch{epoch:03d}",
                every_n_epochs=t.checkpoint_every_n_epochs,
                save_top_k=-1,
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
        )
    loggers = [CSVLogger(run_dir, name="", version="csv")]
    try:
        loggers.append(TensorBoardLogger(run_dir, name="", version="tb", default_hp_metric=False))
    except ModuleNotFoundError:  # tensorboard is in the [train] extra; CSV still works
        log.warning("tensorboard not installed: CSV logs only")
    return L.Trainer(
        default_root_dir=run_dir,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        callbacks=cbs,
        logger=loggers,
        check_val_every_n_epoch=t.val_every_n_epochs,
        log_every_n_steps=t.log_every_n_steps,
        gradient_clip_val=t.gradient_clip_val or None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        deterministic=t.deterministic,
        enable_progress_bar=t.progress_bar and sys.stderr.isatty(),  # bars only on a terminal
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def train(
    cfg: TrainConfig,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    callbacks: list | None = None,
) -> RunResult:
    """Train one model as configured; returns the run dir and its final figures.

    ``callbacks``: extra Lightning callbacks (e.g. early stopping, custom monitors).

    ``resume``: a run dir or checkpoint; continues weights, optimiser, scheduler, epoch and
    the best-checkpoint tracking (the run dir is the checkpoint's unless ``out`` is given).
    """
    import lightning as L

    from qualitas.evaluation.correlation import evaluate
    from qualitas.losses import build_loss
    from qualitas.models import build_model
    from qualitas.training.callbacks import (
        HistoryRecorder,
        PredictionWriter,
        ThroughputMonitor,
        VisdomLogger,
    )
    from qualitas.training.datamodule import QualityDataModule
    from qualitas.training.task import FIGURES, QualityTask

    if cfg.trainer.method == "probe":
        if resume is not None:
            raise UsageError("trainer.method=probe fits in one pass: there is nothing to resume")
        from qualitas.training.probe import fit_probe

        return fit_probe(cfg, out=out)
    if cfg.trainer.method != "gradient":
        raise ConfigError(
            f"unknown trainer.method '{cfg.trainer.method}'{did_you_mean(cfg.trainer.method, TRAIN_METHODS)}; "
            f"choose one of {', '.join(TRAIN_METHODS)}"
        )
    if cfg.model.get("calibration", "none") != "none":
        raise ConfigError(
            "model.calibration is fitted in closed form by trainer.method: probe, not by gradients"
        )
    resume_ckpt = None
    if resume is not None:
        resume_ckpt = resolve_checkpoint(resume, prefer="last")
        # Read it now: a corrupt or truncated file is one line here, not an OSError
        # traceback from inside Lightning once the run folder exists.
        state = read_checkpoint(resume_ckpt)
        if "state_dict" not in state or "epoch" not in state:
            raise UsageError(f"{resume_ckpt}: not a training checkpoint to resume (no state_dict/epoch)")
        del state
        if out is None:
            out = run_dir_of(resume_ckpt)
    with open_run_folder(cfg, out) as folder:
        run_dir = folder.path
        L.seed_everything(cfg.run.seed, workers=True, verbose=False)
        if cfg.task != "quality":  # classification / segmentation: docs/tasks.md
            return _train_vision(cfg, folder, resume_ckpt, callbacks)
        model = build_model(cfg.model["name"], **cfg.model_kwargs)
        spec = model.spec
        loss = build_loss(cfg.loss)
        target = TARGET_OF_INPUT_KIND.get(getattr(loss, "input_kind", "score"), "mos")
        full_reference = bool(spec.full_reference)
        if cfg.data.full_reference is not None and cfg.data.full_reference != full_reference:
            raise ConfigError(
                f"data.full_reference={cfg.data.full_reference} but model '{cfg.model['name']}' is "
                f"{'full' if full_reference else 'no'}-reference"
            )
        if spec.output == "distribution" and target == "mos" and cfg.data.mos_norm != "none":
            raise ConfigError("a distribution head predicts MOS units: set data.mos_norm: none")
        data = prepare_data(cfg.data, full_reference=full_reference, target=target, run_dir=run_dir)
        check_model_data(spec, data.dataset_name, cfg.data)
        if _is_global_zero():
            atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        if cfg.run.finetune_from and resume_ckpt is None:
            report = load_matching_weights(model, cfg.run.finetune_from)
            if _is_global_zero():
                atomic_write_text(run_dir / "finetune.json", json.dumps(report, indent=1))
        monitor_name = cfg.trainer.monitor.removeprefix("val/")
        if monitor_name not in FIGURES:
            raise ConfigError(
                f"unknown trainer.monitor '{cfg.trainer.monitor}'{did_you_mean(monitor_name, list(FIGURES))}; "
                f"choose one of {', '.join(FIGURES)}"
            )
        monitor = f"val/{monitor_name}"
        info = run_info(cfg, spec, data, full_reference=full_reference, target=target, monitor=monitor)
        task = QualityTask(
            model,
            loss,
            target=target,
            optimizer=cfg.optimizer,
            scheduler=cfg.scheduler,
            score_norm=data.score_norm,
            evaluate_fn=evaluate,
            info=info,
        )
        dm = QualityDataModule.from_splits(data.datasets, cfg.data)
        paths = {s: [r.path for r in ds.records] if ds is not None else [] for s, ds in data.datasets.items()}
        throughput = ThroughputMonitor()
        cbs = [throughput, HistoryRecorder(run_dir), PredictionWriter(run_dir, paths), *(callbacks or [])]
        if cfg.trainer.visdom:
            try:
                cbs.append(VisdomLogger(env=cfg.run.name))
            except ImportError:
                log.warning("trainer.visdom: visdom is not installed (pip install visdom); skipped")
        return fit_and_report(
            cfg,
            folder,
            task,
            dm,
            cbs,
            monitor=monitor,
            has_test=data.datasets["test"] is not None,
            throughput=throughput,
            resume_ckpt=resume_ckpt,
            extra=lambda: {
                "skipped_samples": int(task.skipped_total),
                "bad_rows": len(data.report.bad_lines),
                "dataset": data.dataset_name,
                "split_sizes": {s: len(v) for s, v in data.splits.items()},
            },
        )


def _train_vision(
    cfg: TrainConfig, folder: RunFolder, resume_ckpt: Path | None, callbacks: list | None
) -> RunResult:
    """A classification/segmentation (:mod:`qualitas.training.vision`) or detection/keypoint
    (:mod:`qualitas.training.detection`) run in an open run folder."""
    from qualitas.training.callbacks import HistoryRecorder, ThroughputMonitor, VisdomLogger
    from qualitas.training.config import DETECTION_TASKS
    from qualitas.training.detection import setup_detection
    from qualitas.training.vision import setup_vision

    run_dir = folder.path
    setup = setup_detection if cfg.task in DETECTION_TASKS else setup_vision
    s = setup(cfg, run_dir, write=_is_global_zero())
    if _is_global_zero():
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    if cfg.run.finetune_from and resume_ckpt is None:
        report = load_matching_weights(s.model, cfg.run.finetune_from)
        if _is_global_zero():
            atomic_write_text(run_dir / "finetune.json", json.dumps(report, indent=1))
    throughput = ThroughputMonitor()
    cbs = [throughput, HistoryRecorder(run_dir), *(callbacks or [])]
    if cfg.trainer.visdom:
        try:
            cbs.append(VisdomLogger(env=cfg.run.name))
        except ImportError:
            log.warning("trainer.visdom: visdom is not installed (pip install visdom); skipped")
    return fit_and_report(
        cfg,
        folder,
        s.task,
        s.datamodule,
        cbs,
        monitor=s.monitor,
        has_test=s.data.datasets["test"] is not None,
        throughput=throughput,
        resume_ckpt=resume_ckpt,
        extra=lambda: {
            "task": cfg.task,
            "classes": s.data.classes,
            "dataset": f"{cfg.task}:{cfg.data.format}",
            "split_sizes": s.data.split_sizes(),
        },
    )


def fit_and_report(
    cfg: TrainConfig,
    folder: RunFolder,
    task: Any,
    dm: Any,
    cbs: list,
    *,
    monitor: str,
    has_test: bool,
    throughput: Any,
    extra: Any,
    resume_ckpt: Path | None = None,
) -> RunResult:
    """Fit, re-validate (and test) the best checkpoint, write ``metrics.json`` and the curves.

    Shared by every task; ``extra()`` adds the task's own entries to ``metrics.json``.
    """
    from qualitas.training.task import metric_mode

    run_dir, handler = folder.path, folder.handler
    with _library_chatter_to(handler):
        trainer = build_trainer(cfg, run_dir, cbs, monitor=monitor, mode=metric_mode(monitor))
        folder.started = True  # Lightning starts: from now on the folder holds a real run
        trainer.fit(task, datamodule=dm, ckpt_path=resume_ckpt, weights_only=True)
        best = run_dir / "checkpoints" / "best.ckpt"
        best_ckpt = best if best.is_file() else run_dir / "checkpoints" / "last.ckpt"
        val = _figures_of(
            trainer.validate(task, datamodule=dm, ckpt_path=best_ckpt, verbose=False, weights_only=True),
            "val",
        )
    # Prefer the task's float64 figures (logged values pass through float32); under
    # ddp_spawn the task here is not the one that ran, so fall back to the logged ones.
    val = task.eval_results.get("val", {}).get("figures") or val
    test = {}
    if has_test:
        with _library_chatter_to(handler):
            test = _figures_of(
                trainer.test(task, datamodule=dm, ckpt_path=best_ckpt, verbose=False, weights_only=True),
                "test",
            )
        test = task.eval_results.get("test", {}).get("figures") or test
    metrics = {
        "best_checkpoint": str(best_ckpt),
        "best_epoch": int(read_checkpoint(best_ckpt).get("epoch", -1)),
        "monitor": monitor,
        "val": val,
        "test": test,
        "epochs": int(trainer.current_epoch),
        "throughput": throughput.history[-1] if throughput.history else {},
        **extra(),
    }
    if trainer.is_global_zero:
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1, allow_nan=True))
        _plot_curves(run_dir)
        log.info("run %s: val %s%s", run_dir, _brief(val), f"; test {_brief(test)}" if test else "")
    return RunResult(run_dir, metrics)


def _brief(fig: dict) -> str:
    keys = ("srocc", "plcc", "krocc", "rmse", "top1", "top5", "macro_f1", "map", "map50", "miou", "pixel_acc")
    return ", ".join(f"{k} {fig[k]:.4f}" for k in keys if isinstance(fig.get(k), float))


def _plot_curves(run_dir: Path) -> None:
    csv_log = run_dir / "csv" / "metrics.csv"
    if not csv_log.is_file():
        return
    try:
        from qualitas.evaluation.plots import training_curves

        training_curves(csv_log, run_dir / "training_curves.png", title=run_dir.name)
    except ImportError as err:  # matplotlib is optional outside [train]
        log.warning("training curves not plotted: %s", err)


# --------------------------------------------------------------------------- repeated splits


def train_splits(cfg: TrainConfig, n: int, *, out: str | Path | None = None) -> dict:
    """Train on ``n`` seeded random splits; median and mean ± std of SROCC/PLCC.

    Figures are the test split's when there is one, else validation's. Writes
    ``splits_summary.json`` in the parent folder and returns the summary.
    """
    if n < 1:
        raise UsageError("--splits must be >= 1")
    records = read_manifest(data_paths(cfg.data)[0])
    if any(r.split for r in records):
        raise ConfigError("--splits needs a manifest without a 'split' field (the split would never change)")
    parent = Path(out) if out is not None else new_run_dir(cfg, None)
    runs = []
    for i in range(n):
        c = dataclasses.replace(
            cfg,
            data=dataclasses.replace(cfg.data, split_seed=cfg.data.split_seed + i),
            run=dataclasses.replace(cfg.run, seed=cfg.run.seed + i),
        )
        res = train(c, out=parent / f"split{i:02d}")
        fig = res.metrics["test"] or res.metrics["val"]
        runs.append(
            {
                "run_dir": str(res.run_dir),
                "split_seed": c.data.split_seed,
                "on": "test" if res.metrics["test"] else "val",
                **fig,
            }
        )
    summary: dict[str, Any] = {"n": n, "runs": runs}
    for key in ("srocc", "plcc"):
        vals = [r[key] for r in runs if key in r and math.isfinite(r[key])]
        if vals:
            summary[key] = {
                "median": statistics.median(vals),
                "mean": statistics.fmean(vals),
                "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                "values": vals,
            }
    atomic_write_text(parent / "splits_summary.json", json.dumps(summary, indent=1))
    return summary


def format_splits_summary(summary: dict) -> str:
    lines = [f"{summary['n']} splits"]
    for key in ("srocc", "plcc"):
        if key in summary:
            s = summary[key]
            lines.append(f"{key.upper()}: median {s['median']:.4f}, mean {s['mean']:.4f} ± {s['std']:.4f}")
    return "\n".join(lines)


def config_for_resume(config: str | Path | None, resume: str | Path, overrides: list[str]) -> TrainConfig:
    """The config of a resumed run: the given file, else the run's saved ``config.yaml``."""
    if config is not None:
        return load_config(config, overrides)
    ckpt = resolve_checkpoint(resume, prefer="last")
    run = run_dir_of(ckpt)
    if run is None:
        raise UsageError(f"{resume}: give the CONFIG file too (no config.yaml next to the checkpoint)")
    return load_config(run / "config.yaml", overrides)

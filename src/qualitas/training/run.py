"""Training runs: data preparation, the run directory, resume, fine-tuning, repeated splits,
and :func:`load_trained` for export/runtime.

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

import contextlib
import dataclasses
import json
import logging
import math
import os
import pickle
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qualitas.data.datasets import (
    DATASETS,
    CheckReport,
    DataError,
    ScoreNorm,
    check_records,
    media_kind_of,
    record_mos,
)
from qualitas.data.manifest import Record, atomic_write_text, read_manifest, resolve_under
from qualitas.data.sampling import ClipSampling
from qualitas.data.splits import assign_splits, leaked_groups
from qualitas.data.transforms import InputSize
from qualitas.errors import ConfigError, UsageError, first_line
from qualitas.registry import did_you_mean
from qualitas.training.config import DataConfig, TrainConfig, load_config

log = logging.getLogger("qualitas.training")

TRAIN_METHODS = ("gradient", "probe")
"""``gradient``: Lightning optimisation of the configured loss; ``probe``: a closed-form ridge
head on a frozen backbone's features (:mod:`qualitas.training.probe`)."""
TARGET_OF_INPUT_KIND = {"score": "mos", "distribution": "votes", "pair": "rank"}
_RUN_DIR_ENV = "QUALITAS_RUN_DIR"


# --------------------------------------------------------------------------- data


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
    s = data.input_size
    return InputSize(
        mode=s.mode,
        size=tuple(s.size) if s.size is not None else None,  # type: ignore[arg-type]
        resize_short=s.resize_short,
        grid=s.grid,
        patch=s.patch,
        hflip=s.hflip,
    )


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


# --------------------------------------------------------------------------- checkpoints


def resolve_checkpoint(path: str | Path, prefer: str = "best") -> Path:
    """A run dir -> its ``checkpoints/<prefer>.ckpt`` (falling back to the other); a file -> itself."""
    p = Path(path)
    if p.is_dir():
        order = [prefer, "last" if prefer == "best" else "best"]
        for name in order:
            c = p / "checkpoints" / f"{name}.ckpt"
            if c.is_file():
                return c
        raise UsageError(f"{p}: no checkpoints/best.ckpt or last.ckpt in this run directory")
    if not p.is_file():
        raise UsageError(f"checkpoint or run directory not found: {p}")
    return p


def run_dir_of(ckpt: Path) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if any."""
    if ckpt.parent.name == "checkpoints" and (ckpt.parent.parent / "config.yaml").is_file():
        return ckpt.parent.parent
    return None


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load(weights_only=True)``: checkpoints are data, never code.

    Any file that does not load (empty, truncated, garbage, a pickle with code in it) is a
    one-line :class:`UsageError`: whatever the unpickler raises on hostile bytes is a
    property of the file, not a bug of ours.
    """
    p = Path(path)
    if p.is_file() and p.stat().st_size == 0:
        raise UsageError(f"{path}: not a readable checkpoint (empty file, 0 bytes)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own text here suggests weights_only=False, which we never do.
        raise UsageError(
            f"{path}: not a readable checkpoint (corrupt, not a PyTorch file, or it holds code "
            "rather than weights)"
        ) from None
    except Exception as err:  # noqa: BLE001 - see the docstring
        raise UsageError(f"{path}: not a readable checkpoint ({first_line(err)})") from None
    if not isinstance(ckpt, dict):
        raise UsageError(f"{path}: not a checkpoint (holds a {type(ckpt).__name__}, not a mapping)")
    return ckpt


def model_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """The network's weights from a Lightning checkpoint (``model.`` prefix removed) or a state dict."""
    sd = ckpt.get("state_dict", ckpt)
    if any(k.startswith("model.") for k in sd):
        sd = {k[len("model.") :]: v for k, v in sd.items() if k.startswith("model.")}
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def load_matching_weights(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Fine-tuning: copy every weight whose name and shape match; report the rest.

    Returns ``{"loaded": [...], "mismatched": ["name: (a) vs (b)", ...], "missing": [...],
    "unexpected": [...]}`` (also logged).
    """
    src = model_state(read_checkpoint(resolve_checkpoint(path)))
    own = model.state_dict()
    take, mismatched = {}, []
    for k, v in src.items():
        if k in own:
            if own[k].shape == v.shape:
                take[k] = v
            else:
                mismatched.append(f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}")
    model.load_state_dict(take, strict=False)
    out = {
        "loaded": sorted(take),
        "mismatched": mismatched,
        "missing": sorted(set(own) - set(src)),
        "unexpected": sorted(set(src) - set(own)),
    }
    log.info(
        "finetune_from %s: %d tensors loaded, %d skipped for shape, %d missing, %d unexpected",
        path,
        len(take),
        len(mismatched),
        len(out["missing"]),
        len(out["unexpected"]),
    )
    for m in mismatched:
        log.info("  skipped (shape): %s", m)
    for m in out["missing"]:
        log.info("  not in checkpoint (kept initial): %s", m)
    return out


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained model from a run dir (best checkpoint) or a ``.ckpt``.

    Returns ``(model, info)``: the plain ``nn.Module`` in eval mode, and a dict with
    ``spec`` (model card dict), ``model`` (name, kwargs), ``score_norm`` (to invert:
    ``mos = pred * scale + shift``; already applied by :func:`predict_scores`),
    ``input_size``, ``sampling`` and ``eval_clips`` (video), ``full_reference``,
    ``higher_is_better``, ``score_range``, ``dataset``, ``target``, ``checkpoint``,
    ``epoch`` and ``metrics`` (the run's metrics.json, when present).
    """
    from qualitas.models import model_from_spec

    ckpt_path = resolve_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    info = dict(ckpt.get("qualitas") or {})
    if "spec" not in info:
        raise UsageError(f"{ckpt_path}: not a qualitas training checkpoint (no model card)")
    model = model_from_spec(info["spec"])
    missing, unexpected = model.load_state_dict(model_state(ckpt), strict=False)
    if missing or unexpected:
        raise UsageError(
            f"{ckpt_path}: weights do not match the model card ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, e.g. {(missing or unexpected)[0]})"
        )
    model.eval().to(device)
    info["checkpoint"] = str(ckpt_path)
    info["epoch"] = int(ckpt.get("epoch", -1))
    run = run_dir_of(ckpt_path)
    metrics_file = run / "metrics.json" if run is not None else None
    info["metrics"] = json.loads(metrics_file.read_text()) if metrics_file and metrics_file.is_file() else {}
    return model, info


# --------------------------------------------------------------------------- training


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


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict


def new_run_dir(cfg: TrainConfig, out: str | Path | None) -> Path:
    """``--out`` as given, else ``run.out/run.name-YYYYmmdd-HHMMSS`` (unique).

    DDP children started by Lightning inherit the parent's choice through the environment,
    so every rank writes into the same folder.
    """
    if out is not None:
        return Path(out)
    inherited = os.environ.get(_RUN_DIR_ENV)
    if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
        return Path(inherited)
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 or int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        # Each process of torchrun/srun would pick its own time-stamped folder.
        raise UsageError(
            "multi-process launches (torchrun, srun) need --out RUN_DIR, the same for every process"
        )
    base = Path(cfg.run.out) / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    p, n = base, 1
    while p.exists():
        p, n = Path(f"{base}-{n}"), n + 1
    return p


_LIBRARY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "py.warnings")


@contextlib.contextmanager
def _library_chatter_to(handler: logging.Handler):
    """Send Lightning's info lines (accelerator banners, tips, "`Trainer.fit` stopped") and
    every Python warning raised meanwhile (deprecations from libraries) to the run's log
    file instead of the console: they are for whoever debugs the run, not its user."""
    saved = []
    for name in _LIBRARY_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.handlers[:], lg.propagate, lg.level))
        lg.handlers = [handler]
        lg.propagate = False
        lg.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each distinct warning once in the log
            yield
    finally:
        logging.captureWarnings(False)
        for lg, handlers, propagate, level in saved:
            lg.handlers, lg.propagate = handlers, propagate
            lg.setLevel(level)


def _file_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("qualitas").addHandler(handler)
    logging.getLogger("qualitas").setLevel(logging.INFO)
    return handler


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


def run_info(
    cfg: TrainConfig, spec: Any, data: PreparedData, *, full_reference: bool, target: str, monitor: str
) -> dict:
    """What a run records about itself in every checkpoint (``ckpt["qualitas"]``)."""
    return {
        "model": {"name": cfg.model["name"], "kwargs": dict(cfg.model_kwargs)},
        "spec": spec.to_dict(),
        "score_norm": data.score_norm.to_dict(),
        "input_size": input_size_of(cfg.data).to_dict(),
        "sampling": dataclasses.asdict(cfg.data.sampling),
        "eval_clips": cfg.data.eval_clips,
        "full_reference": full_reference,
        "video": bool(spec.video),
        "target": target,
        "dataset": data.dataset_name,
        "manifest": str(data.manifest),
        "root": str(data.root),
        "higher_is_better": cfg.data.higher_is_better,
        "score_range": list(cfg.data.score_range) if cfg.data.score_range else None,
        "vote_bins": cfg.data.vote_bins,
        "split_seed": cfg.data.split_seed,
        "split_ratios": dict(cfg.data.split_ratios),
        "monitor": monitor,
        "config": cfg.to_dict(),
    }


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
        dm = QualityDataModule(
            data.datasets["train"],
            data.datasets["val"],
            data.datasets["test"],
            batch_size=cfg.data.batch_size,
            val_batch_size=cfg.data.val_batch_size,
            num_workers=cfg.data.num_workers,
            pin_memory=cfg.data.pin_memory,
        )
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
    """A classification/segmentation run (:mod:`qualitas.training.vision`) in an open run folder."""
    from qualitas.training.callbacks import HistoryRecorder, ThroughputMonitor, VisdomLogger
    from qualitas.training.vision import setup_vision

    run_dir = folder.path
    s = setup_vision(cfg, run_dir, write=_is_global_zero())
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


@dataclass
class RunFolder:
    """An open run directory: its path, the ``train.log`` handler, and whether the run started."""

    path: Path
    handler: logging.Handler
    started: bool = False
    """Set once training (or a probe's first feature pass) begins; until then a failure
    removes the folder again."""


@contextlib.contextmanager
def open_run_folder(cfg: TrainConfig, out: str | Path | None) -> Iterator[RunFolder]:
    """Create (or reuse) the run directory, log ``qualitas`` into its ``train.log`` and tell
    DDP children where it is; on exit detach the log, and undo a folder this call created
    for a run that never started (:func:`_remove_unstarted_run`)."""
    run_dir = new_run_dir(cfg, out)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[_RUN_DIR_ENV] = str(run_dir.resolve())
    folder = RunFolder(run_dir, _file_logging(run_dir))
    try:
        yield folder
    finally:
        logging.getLogger("qualitas").removeHandler(folder.handler)
        folder.handler.close()
        if created and not folder.started:
            _remove_unstarted_run(run_dir)


def _remove_unstarted_run(run_dir: Path) -> None:
    """Undo the folder of a run that failed before training started (bad data, a model that
    does not fit the data): its log and config describe a run that never was. A report worth
    reading (``data_problems.json``) keeps the folder; empty sub-folders go."""
    for name in ("train.log", "config.yaml", "finetune.json"):
        (run_dir / name).unlink(missing_ok=True)
    for folder in sorted((p for p in run_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only when empty


def _brief(fig: dict) -> str:
    keys = ("srocc", "plcc", "krocc", "rmse", "top1", "top5", "macro_f1", "map", "miou", "pixel_acc")
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

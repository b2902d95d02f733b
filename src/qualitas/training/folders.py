"""The run directory's lifecycle: a new unique folder, its ``train.log`` (library chatter
included), the environment DDP workers use to find it, and removal of a folder whose run
never started. Shared by gradient training and the probe."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qualitas.errors import UsageError
from qualitas.training.config import TrainConfig

log = logging.getLogger("qualitas.training")


_RUN_DIR_ENV = "QUALITAS_RUN_DIR"


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

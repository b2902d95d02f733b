"""The training config: one YAML file, typed sections, ``-o key=value`` overrides.

``task`` (``quality`` by default, or ``classification`` / ``segmentation`` / ``detection`` /
``keypoints``: docs/tasks.md)
selects the dataset readers, model family, default loss and metrics. Sections: ``run``, ``model``,
``data``, ``loss``, ``optimizer``, ``scheduler``, ``trainer``, ``pretrain`` (reference:
docs/configs.md). ``model`` and ``loss`` hold a component ``name`` plus that
component's own keyword arguments (checked against the component's signature when it is
built); every other section has a fixed schema. Unknown keys are errors that name the key
and the closest valid one.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from qualitas.data.splits import DEFAULT_RATIOS
from qualitas.errors import ConfigError, UsageError
from qualitas.registry import did_you_mean

# --------------------------------------------------------------------------- schema


@dataclass
class RunConfig:
    name: str = "run"
    out: str = "runs"
    """Parent folder of run directories (``out/name-<time>``), unless ``--out`` names one."""
    seed: int = 0
    finetune_from: str | None = None
    """Run dir or checkpoint: load matching weights, skip mismatched shapes (logged)."""


@dataclass
class InputSizeConfig:
    mode: str = "none"
    size: list[int] | None = None
    resize_short: int = 0
    grid: int = 7
    patch: int = 32
    hflip: bool = False


@dataclass
class SamplingConfig:
    mode: str = "uniform"
    num_frames: int = 8
    step: int = 1


@dataclass
class DataConfig:
    manifest: str = ""
    root: str | None = None
    """Folder the manifest paths are relative to (default: the manifest's folder). Detection
    with COCO files: the image folder (``{split}`` is replaced by the split name; default the
    JSON file's folder)."""
    dataset: str = "auto"
    """``auto`` (from the first record: image / video / frames), or a DATASETS name."""
    full_reference: bool | None = None
    """``None``: from the model (``model.spec.full_reference``)."""
    batch_size: int = 16
    val_batch_size: int | None = None
    num_workers: int = 2
    input_size: InputSizeConfig = field(default_factory=InputSizeConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    eval_clips: int = 1
    """Video evaluation: clips per video, predictions averaged per video."""
    split_ratios: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    split_seed: int = 0
    mos_norm: str = "none"
    score_range: list[float] | None = None
    """``[lo, hi]``: rows outside are bad; ``minmax`` maps it to ``[0, 1]``."""
    higher_is_better: bool = True
    """False for DMOS-style scores (lower is better); recorded for export/runtime."""
    vote_bins: list[float] | None = None
    """Score of each vote bin (default ``1..N``)."""
    on_error: str = "fail"
    check_media: str = "header"
    pin_memory: bool = False
    # ---- classification / segmentation (task != quality; docs/tasks.md)
    format: str = "auto"
    """Dataset layout: classification ``folders`` | ``list`` | ``multilabel``; segmentation
    ``folders`` (images + masks matched by stem) | ``list`` (PaddleSeg ``image mask`` lines);
    detection ``coco`` | ``voc`` | ``yolo`` (keypoints: ``coco``); ``auto`` guesses from
    ``train`` (a folder or a list file; detection: a ``.json`` file is COCO)."""
    train: str | None = None
    val: str | None = None
    test: str | None = None
    """Each split: a class-folder tree, a list file, or (segmentation folders) a folder holding
    ``images/`` and ``masks/`` (``labels/``, ``annotations/``). ``val`` empty: carved out of
    ``train`` with ``split_ratios``/``split_seed``."""
    classes: Any = None
    """Class names: a file (one name per line) or a list; folder layouts default to the folder names."""
    palette: Any = None
    """Segmentation colours: a file (``r g b`` per line) or a list of ``[r, g, b]``."""
    ignore_index: int = 255
    balanced: bool = False
    """Classification: draw training samples with class-balanced probabilities."""
    augment: str = "basic"
    """Training augmentation: ``none`` | ``basic`` (torchvision v2 random resized crop + flip;
    detection: flip) | ``color`` (basic + colour jitter) | ``timm`` (timm's RandAugment
    pipeline; classification)."""
    flip_pairs: list | None = None
    """Keypoints: 0-based ``[left, right]`` index pairs swapped by a horizontal flip; without
    them keypoint images are not flipped."""
    keypoint_sigmas: Any = None
    """Keypoints: OKS constants (one number, or one per keypoint); default COCO's person values
    for 17 keypoints, else 0.1 each."""


@dataclass
class OptimizerConfig:
    name: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    backbone_lr_mult: float = 1.0
    """Learning-rate factor for parameters under ``backbone`` (e.g. 0.1 for pretrained ones)."""


@dataclass
class SchedulerConfig:
    name: str = "cosine"
    """``constant`` | ``cosine`` | ``step`` (all after the linear warmup)."""
    warmup_epochs: float = 0.0
    warmup_start: float = 0.01
    """Warmup starts at ``lr * warmup_start``."""
    min_lr: float = 0.0
    """cosine: final ``lr`` as a fraction of the base ``lr``."""
    step_epochs: float = 10.0
    gamma: float = 0.1


@dataclass
class TrainerConfig:
    max_epochs: int = 30
    max_steps: int = -1
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    val_every_n_epochs: int = 1
    checkpoint_every_n_epochs: int = 0
    """Keep a periodic checkpoint every N epochs (0: only best and last)."""
    monitor: str = "srocc"
    """Validation figure for the best checkpoint: srocc, krocc, plcc, rmse or their *_fitted."""
    log_every_n_steps: int = 10
    gradient_clip_val: float = 0.0
    accumulate_grad_batches: int = 1
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    deterministic: bool = False
    progress_bar: bool = True
    visdom: bool = False
    """Also log to a running visdom server (needs ``pip install visdom``)."""
    method: str = "gradient"
    """``gradient`` (Lightning, the configured loss and optimiser) or ``probe``: a ridge head
    fit in closed form on the features of a frozen pretrained backbone (docs/training.md)."""
    probe_views: int = 2
    """probe: random views (crops/fragments, clips) of each training item."""
    probe_alphas: list = field(default_factory=lambda: [1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0])
    """probe: ridge strengths tried (times the number of rows); the best on validation wins.
    With an MLP head (``model.hidden > 0``): weight decays tried for its Adam fit."""
    probe_epochs: int = 200
    """probe with an MLP head: full passes of Adam over the cached features."""
    probe_rank_weight: float = 0.0
    """probe, ridge head: weight of a within-content term (RankIQA's idea in closed form):
    features and targets centred within each manifest ``group`` (one content and its
    distortions) must fit too, so the read-out orders the levels of one content rather than
    the contents (docs/training.md). 0 = plain ridge."""
    probe_features_from: str | None = None
    """probe: reuse the cached features (``probe_features.pt``) of an earlier probe run with the
    same data, model and sizing (checked), to try other heads or strengths in seconds."""


@dataclass
class PretrainConfig:
    """``qualitas pretrain`` only (docs/pretraining.md): self-supervised pretraining of the
    backbone of ``model`` on unlabelled images and video frames."""

    method: str = "simclr"
    """``simclr`` (content-aware) or ``contrique`` (quality-aware: synthetic distortion
    classes as contrastive classes)."""
    source: str = ""
    """A folder (images and videos, recursively) or a manifest of unlabelled media (paths
    relative to ``data.root``, default the manifest's folder)."""
    crop: int = 128
    """Side of each square view fed to the network."""
    max_side: int = 320
    """Images and frames are downscaled so their longer side is at most this (0: keep)."""
    frames_per_video: int = 16
    """Frames taken from each video of ``source`` (evenly spread, by ``qualitas data frames``)."""
    frames_dir: str | None = None
    """Where video frames are extracted (default ``<run>/frames``; reused when it exists)."""
    projection_dim: int = 128
    hidden_dim: int = 512
    temperature: float = 0.1
    distortions: list[str] | None = None
    """contrique: ``qualitas data synth`` distortion types used as classes (default: all)."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """contrique: levels of each type (class = type x level; pristine is one more class)."""


@dataclass
class TrainConfig:
    task: str = "quality"
    """``quality`` | ``classification`` | ``segmentation`` | ``detection`` | ``keypoints``
    (docs/tasks.md)."""
    run: RunConfig = field(default_factory=RunConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "nr_iqa"})
    data: DataConfig = field(default_factory=DataConfig)
    loss: Any = field(default_factory=lambda: {"name": "l1"})
    """A loss name, ``{name, weight?, **args}``, or a list of those (summed with weights)."""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.model.items() if k != "name"}


TASKS = ("quality", "classification", "segmentation", "detection", "keypoints")
DETECTION_TASKS = ("detection", "keypoints")
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": {
        "model": {"name": "classifier"},
        "loss": {"name": "cross_entropy"},
        "monitor": "top1",
    },
    "segmentation": {
        "model": {"name": "segmenter"},
        "loss": {"name": "seg_cross_entropy"},
        "monitor": "miou",
    },
    "detection": {
        "model": {"name": "detector", "arch": "fcos"},
        "loss": {"name": "detector"},
        "monitor": "map50",
    },
    "keypoints": {
        "model": {"name": "detector", "arch": "keypoint_rcnn"},
        "loss": {"name": "detector"},
        "monitor": "map50",
    },
}
"""What a task uses when the config leaves ``model``, ``loss`` or ``trainer.monitor`` out."""

FREE_SECTIONS = ("model", "loss")
"""Sections whose keys (besides ``name``) are the component's own keyword arguments
(checked by ``build_model``/``build_loss`` against the component's signature)."""


# --------------------------------------------------------------------------- typed conversion


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type; ConfigError naming ``key`` otherwise."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as err:
                errors.append(err)
        raise errors[0] if errors else ConfigError(f"{key}: unexpected value {value!r}")
    if dataclasses.is_dataclass(hint):
        if value is None:
            return hint()
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(hint, value, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner,) = typing.get_args(hint)[:1] or (Any,)
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(hint) or (str, Any)
        return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _build(cls: type, raw: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            hint = did_you_mean(str(k), names)
            if hint and prefix:  # name the full dotted key: " (did you mean 'trainer.max_epochs'?)"
                hint = hint.replace(" '", f" '{prefix}.", 1)
            raise ConfigError(f"unknown config key '{key}'{hint}")
        kwargs[k] = _coerce(v, hints[k], key)
    return cls(**kwargs)


def config_from_dict(raw: dict) -> TrainConfig:
    """Validate a raw mapping (parsed YAML) into a :class:`TrainConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError("a config file must be a YAML mapping with sections model, data, loss, ...")
    raw = _task_defaults(raw)
    for section in FREE_SECTIONS:
        value = raw.get(section)
        if value is None:
            continue
        if section == "loss" and isinstance(value, list):
            if not all(isinstance(v, (str, dict)) for v in value):
                raise ConfigError("'loss' list entries must be names or mappings with a 'name'")
            continue
        if isinstance(value, str):  # "model: nr_iqa" is shorthand for {name: nr_iqa}
            raw = {**raw, section: {"name": value}}
        elif not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ConfigError(f"'{section}' must be a mapping with a 'name' and its arguments")
    cfg = _build(TrainConfig, raw, "")
    check_values(cfg)
    return cfg


def _task_defaults(raw: dict) -> dict:
    """Check ``task`` and fill the task's default model/loss/monitor where the config has none."""
    task = raw.get("task", "quality")
    if not isinstance(task, str) or task not in TASKS:
        raise ConfigError(
            f"unknown task {task!r}{did_you_mean(str(task), TASKS)}; choose one of {', '.join(TASKS)}"
        )
    defaults = TASK_DEFAULTS.get(task)
    if defaults is None:
        return raw
    raw = dict(raw)
    for section in ("model", "loss"):
        if raw.get(section) is None:
            raw[section] = dict(defaults[section])
    trainer = raw.get("trainer")
    if trainer is None or (isinstance(trainer, dict) and "monitor" not in trainer):
        raw["trainer"] = {**(trainer or {}), "monitor": defaults["monitor"]}
    return raw


# Allowed ranges of numeric values: (dotted key, test, what the test means). Checked before a
# run starts, so a bad value is one line instead of a Lightning/torch traceback mid-setup.
_RANGES: tuple[tuple[str, Any, str], ...] = (
    ("trainer.max_epochs", lambda v: v >= 1, ">= 1"),
    ("trainer.max_steps", lambda v: v == -1 or v >= 1, "-1 (no limit) or >= 1"),
    ("trainer.num_nodes", lambda v: v >= 1, ">= 1"),
    ("trainer.val_every_n_epochs", lambda v: v >= 1, ">= 1"),
    ("trainer.checkpoint_every_n_epochs", lambda v: v >= 0, ">= 0"),
    ("trainer.log_every_n_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.gradient_clip_val", lambda v: v >= 0, ">= 0"),
    ("trainer.accumulate_grad_batches", lambda v: v >= 1, ">= 1"),
    ("trainer.limit_train_batches", lambda v: v > 0, "> 0"),
    ("trainer.limit_val_batches", lambda v: v > 0, "> 0"),
    ("optimizer.lr", lambda v: v > 0, "> 0"),
    ("optimizer.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optimizer.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optimizer.backbone_lr_mult", lambda v: v >= 0, ">= 0"),
    ("scheduler.warmup_epochs", lambda v: v >= 0, ">= 0"),
    ("scheduler.warmup_start", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("scheduler.min_lr", lambda v: 0 <= v <= 1, "in [0, 1] (a fraction of lr)"),
    ("scheduler.step_epochs", lambda v: v > 0, "> 0"),
    ("scheduler.gamma", lambda v: v > 0, "> 0"),
    ("data.batch_size", lambda v: v >= 1, ">= 1"),
    ("data.val_batch_size", lambda v: v is None or v >= 1, ">= 1"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("data.eval_clips", lambda v: v >= 1, ">= 1"),
    ("data.sampling.num_frames", lambda v: v >= 1, ">= 1"),
    ("data.sampling.step", lambda v: v >= 1, ">= 1"),
    ("pretrain.crop", lambda v: v >= 16, ">= 16"),
    ("pretrain.max_side", lambda v: v >= 0, ">= 0"),
    ("pretrain.frames_per_video", lambda v: v >= 0, ">= 0"),
    ("pretrain.projection_dim", lambda v: v >= 1, ">= 1"),
    ("pretrain.hidden_dim", lambda v: v >= 1, ">= 1"),
    ("pretrain.temperature", lambda v: v > 0, "> 0"),
)


def check_values(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` for a numeric value outside its range (or NaN/inf)."""
    for key, ok, rule in _RANGES:
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        finite = value is None or (isinstance(value, (int, float)) and math.isfinite(value))
        if not finite or not ok(value):
            raise ConfigError(f"{key} must be {rule}, got {value!r}")
    betas = cfg.optimizer.betas
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"optimizer.betas must be two numbers in [0, 1), got {betas!r}")


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.max_epochs=3"`` -> (["trainer", "max_epochs"], 3); values are YAML."""
    if "=" not in text:
        raise UsageError(f"override '{text}' must look like key.subkey=value")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise UsageError(f"override '{text}': empty key part")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise UsageError(f"override '{text}': value is not valid YAML") from None
    return parts, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of ``raw`` with each ``key=value`` set (validation happens afterwards)."""
    out = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"override '{text}': '{'.'.join(parts[: i + 1])}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (``yaml.safe_load``), apply overrides, validate.

    Relative ``data.manifest``/``data.root`` stay relative to the current directory.
    """
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ConfigError(f"{p}: not valid YAML{where}") from None
    return config_from_dict(apply_overrides(raw, overrides or []))


def config_and_weights(
    path: str | Path,
    weights: str | Path | None,
    overrides: list[str] | None,
    load: typing.Callable[[str | Path], tuple[Any, Any]],
    saved_config: typing.Callable[[Any], dict],
) -> tuple[TrainConfig, Any, Any]:
    """What ``qualitas eval PATH [--weights W]`` evaluates: ``(config, model, info)``.

    ``path`` is a run dir / checkpoint (its saved config, with ``overrides``), or a config file
    with ``weights`` (a run dir or checkpoint). ``load(weights) -> (model, info)`` is the task's
    loader and ``saved_config(info)`` reads the config a run saved.
    """
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        if weights is None:
            raise UsageError("evaluating a config needs --weights RUN_DIR_OR_CKPT")
        cfg = load_config(p, overrides)
        model, info = load(weights)
        return cfg, model, info
    if weights is not None:
        raise UsageError("--weights goes with a CONFIG file; a run directory has its own weights")
    model, info = load(p)
    return config_from_dict(apply_overrides(dict(saved_config(info) or {}), overrides or [])), model, info

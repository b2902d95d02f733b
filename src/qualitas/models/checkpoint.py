"""What a training run records about itself (:class:`RunInfo`) and the checkpoint helpers.

A qualitas checkpoint is a Lightning (or probe) checkpoint whose ``"qualitas"`` entry is
:meth:`RunInfo.to_dict`: the model card (``spec``), the fitted MOS normalisation, the input
size policy, clip sampling and where the data came from. Training writes it; evaluation,
export, importance and the runtime read it back here, below all of them, with
:func:`load_run` (typed) or :func:`load_trained` (the same as a plain dict). Nothing here
imports Lightning: a checkpoint is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qualitas.data.sampling import ClipSampling
from qualitas.data.scores import ScoreNorm
from qualitas.data.splits import DEFAULT_RATIOS
from qualitas.data.transforms import InputSize
from qualitas.errors import UsageError, first_line

log = logging.getLogger("qualitas.training")

# The keys a run stores, in the order they are written (``to_dict``).
_STORED = (
    "model",
    "spec",
    "score_norm",
    "input_size",
    "sampling",
    "eval_clips",
    "full_reference",
    "video",
    "target",
    "dataset",
    "manifest",
    "root",
    "higher_is_better",
    "score_range",
    "vote_bins",
    "split_seed",
    "split_ratios",
    "monitor",
    "config",
)
# Added when a checkpoint is loaded (not stored in it).
_LOADED = ("checkpoint", "epoch", "metrics")


@dataclass
class RunInfo:
    """A training run's record of itself, stored in every checkpoint (``ckpt["qualitas"]``).

    ``spec`` is ``ModelSpec.to_dict()`` (the model card: ``model_from_spec`` rebuilds the
    network from it); ``model`` is ``{"name", "kwargs"}`` as configured. Predictions in MOS
    units are ``score_norm.inverse(output)`` for score heads (see
    :func:`qualitas.models.heads.output_to_score`). ``checkpoint``, ``epoch`` and ``metrics``
    (the run's ``metrics.json``) are filled in by :func:`load_run`.
    """

    spec: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)
    score_norm: ScoreNorm = field(default_factory=ScoreNorm)
    input_size: InputSize = field(default_factory=InputSize)
    sampling: ClipSampling | None = None
    """None only in checkpoints that never recorded it (image runs of old versions)."""
    eval_clips: int = 1
    full_reference: bool = False
    video: bool = False
    target: str = "mos"
    dataset: str = "image"
    manifest: str | None = None
    root: str | None = None
    higher_is_better: bool = True
    score_range: tuple[float, float] | None = None
    vote_bins: list[float] | None = None
    split_seed: int = 0
    split_ratios: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    monitor: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    epoch: int = -1
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back unchanged."""

    def to_dict(self, *, loaded: bool = False) -> dict[str, Any]:
        """Plain data (JSON/``weights_only`` safe); ``loaded`` adds checkpoint, epoch, metrics."""
        out: dict[str, Any] = {
            "model": dict(self.model),
            "spec": dict(self.spec),
            "score_norm": self.score_norm.to_dict(),
            "input_size": self.input_size.to_dict(),
            "sampling": dataclasses.asdict(self.sampling) if self.sampling is not None else None,
            "eval_clips": self.eval_clips,
            "full_reference": self.full_reference,
            "video": self.video,
            "target": self.target,
            "dataset": self.dataset,
            "manifest": self.manifest,
            "root": self.root,
            "higher_is_better": self.higher_is_better,
            "score_range": list(self.score_range) if self.score_range else None,
            "vote_bins": self.vote_bins,
            "split_seed": self.split_seed,
            "split_ratios": dict(self.split_ratios),
            "monitor": self.monitor,
            "config": self.config,
        }
        out.update(self.extra)
        if loaded:
            out.update(checkpoint=self.checkpoint, epoch=self.epoch, metrics=self.metrics)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunInfo:
        """Read a stored record; missing keys take the defaults older versions implied."""
        rng = d.get("score_range")
        sampling = d.get("sampling")
        return cls(
            spec=dict(d.get("spec") or {}),
            model=dict(d.get("model") or {}),
            score_norm=ScoreNorm.from_dict(d.get("score_norm") or {}),
            input_size=InputSize.from_dict(d.get("input_size") or {}),
            sampling=ClipSampling(**sampling) if sampling else None,
            eval_clips=int(d.get("eval_clips", 1)),
            full_reference=bool(d.get("full_reference")),
            video=bool(d.get("video")),
            target=str(d.get("target", "mos")),
            dataset=str(d.get("dataset", "image")),
            manifest=d.get("manifest"),
            root=d.get("root"),
            higher_is_better=bool(d.get("higher_is_better", True)),
            score_range=(float(rng[0]), float(rng[1])) if rng else None,
            vote_bins=d.get("vote_bins"),
            split_seed=int(d.get("split_seed", 0)),
            split_ratios=dict(d.get("split_ratios") or DEFAULT_RATIOS),
            monitor=d.get("monitor"),
            config=dict(d.get("config") or {}),
            checkpoint=d.get("checkpoint"),
            epoch=int(d.get("epoch", -1)),
            metrics=dict(d.get("metrics") or {}),
            extra={k: v for k, v in d.items() if k not in _STORED and k not in _LOADED},
        )

    @property
    def run_name(self) -> str | None:
        """``config.run.name`` of the run, when recorded."""
        return (self.config.get("run") or {}).get("name")


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


def load_run(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, RunInfo]:
    """Rebuild a trained model from a run dir (best checkpoint) or a ``.ckpt``.

    Returns the plain ``nn.Module`` in eval mode on ``device`` and the run's
    :class:`RunInfo` with ``checkpoint``, ``epoch`` and ``metrics`` filled in.
    """
    from qualitas.models.registry import model_from_spec

    ckpt_path = resolve_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    stored = dict(ckpt.get("qualitas") or {})
    if "spec" not in stored:
        raise UsageError(f"{ckpt_path}: not a qualitas training checkpoint (no model card)")
    info = RunInfo.from_dict(stored)
    model = model_from_spec(info.spec)
    missing, unexpected = model.load_state_dict(model_state(ckpt), strict=False)
    if missing or unexpected:
        raise UsageError(
            f"{ckpt_path}: weights do not match the model card ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, e.g. {(missing or unexpected)[0]})"
        )
    model.eval().to(device)
    info.checkpoint = str(ckpt_path)
    info.epoch = int(ckpt.get("epoch", -1))
    run = run_dir_of(ckpt_path)
    metrics_file = run / "metrics.json" if run is not None else None
    info.metrics = json.loads(metrics_file.read_text()) if metrics_file and metrics_file.is_file() else {}
    return model, info


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """:func:`load_run` with the run info as a plain dict (``RunInfo.to_dict(loaded=True)``):
    ``spec``, ``model``, ``score_norm`` (``mos = pred * scale + shift``), ``input_size``,
    ``sampling`` and ``eval_clips`` (video), ``full_reference``, ``higher_is_better``,
    ``score_range``, ``dataset``, ``target``, ``checkpoint``, ``epoch``, ``metrics``."""
    model, info = load_run(path, device=device)
    return model, info.to_dict(loaded=True)

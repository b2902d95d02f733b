"""``qualitas probe``: read out a representation without fine-tuning (frozen backbone, ridge head).

The standard evaluation of self-supervised features (CONTRIQUE and Re-IQA report theirs so).
The backbone is a pretraining run (its ``backbone.pt`` and ``backbone.json``), a weights file
(``arch`` names the timm backbone), or a timm name (random init, or ``pretrained=True``: the
offline ImageNet weights).

* Quality manifests (rows with ``mos``): exactly ``trainer.method: probe``
  (:mod:`qualitas.training.probe`) on ``nr_iqa`` with the backbone frozen and a linear head;
  the run directory is a normal run (SROCC/PLCC/KROCC/RMSE on val and test, ``eval``/``export``
  work on it).
* Classification manifests (rows with a ``label``, no ``mos``): ridge regression onto one-hot
  classes on the standardised frozen features (the same closed form), top-1 accuracy per split.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from qualitas.data.manifest import atomic_write_text, read_manifest, resolve_under
from qualitas.errors import ConfigError, UsageError
from qualitas.training.config import TrainConfig, load_config

log = logging.getLogger("qualitas.training")


@dataclass(frozen=True)
class BackboneRef:
    """Which frozen backbone a probe reads: timm ``name``, weights (``path`` or ImageNet)."""

    name: str
    path: str | None = None
    pretrained: bool = False
    pool: str = "stats"

    def model_overrides(self) -> list[str]:
        out = [
            "model.name=nr_iqa",
            f"model.backbone={self.name}",
            f"model.pretrained={'true' if self.pretrained else 'false'}",
            "model.freeze_backbone=true",
            f"model.pool={self.pool}",
            "model.hidden=0",
        ]
        if self.path:
            out.append(f"model.pretrained_path={self.path}")
        return out


def resolve_backbone(
    what: str, *, arch: str | None = None, pretrained: bool = False, pool: str | None = None
) -> BackboneRef:
    """A pretrain run dir, a weights file (+ ``arch``, or a ``backbone.json`` beside it) or a
    timm backbone name."""
    from qualitas.training.pretrain import BACKBONE_CARD, BACKBONE_FILE

    p = Path(what).expanduser()
    card_file = p / BACKBONE_CARD if p.is_dir() else p.with_name(BACKBONE_CARD)
    if p.is_dir() and not (p / BACKBONE_FILE).is_file():
        raise UsageError(f"{p}: no {BACKBONE_FILE} in this folder (not a qualitas pretrain run)")
    if p.exists():
        card = json.loads(card_file.read_text()) if card_file.is_file() else {}
        name = arch or card.get("backbone")
        if not name:
            raise UsageError(f"{p}: say which architecture these weights are for (--arch NAME)")
        weights = p / BACKBONE_FILE if p.is_dir() else p
        return BackboneRef(name, str(weights), False, pool or "stats")
    if "/" in what or what.endswith((".pt", ".pth", ".safetensors")):
        raise UsageError(f"backbone weights or run not found: {what}")
    return BackboneRef(arch or what, None, pretrained, pool or "stats")


def probe_config(ref: BackboneRef, manifest: str, overrides: list[str]) -> TrainConfig:
    base = [
        *ref.model_overrides(),
        "trainer.method=probe",
        f"data.manifest={manifest}",
        "data.batch_size=1",  # whole images at their own size (data.input_size.mode: none)
        "run.name=probe",
    ]
    cfg = load_config(None, base + list(overrides))
    if cfg.data.input_size.mode == "none" and not any(
        o.startswith("trainer.probe_views=") for o in overrides
    ):
        # Whole images: every "random view" is the same image, one pass is enough.
        cfg = load_config(None, base + ["trainer.probe_views=1", *overrides])
    return cfg


def is_classification(manifest: str | Path) -> bool:
    """Rows carry a ``label`` and no ``mos``."""
    recs = read_manifest(manifest)
    return bool(recs) and all(r.mos is None and "label" in r.extra for r in recs)


def run_probe(
    ref: BackboneRef, manifest: str, overrides: list[str], *, out: str | Path | None = None
) -> dict:
    """The probe's figures: ``{"task", "run_dir", "val", "test"}``."""
    cfg = probe_config(ref, manifest, overrides)
    if is_classification(manifest):
        return probe_classes(cfg, out=out)
    from qualitas.training.run import train

    res = train(cfg, out=out)
    return {
        "task": "quality",
        "run_dir": str(res.run_dir),
        "val": res.metrics["val"],
        "test": res.metrics["test"],
    }


@torch.no_grad()
def _features(model, paths: list[Path], cfg: TrainConfig) -> torch.Tensor:
    """Raw frozen features ``(N, C)`` of each image, its deterministic evaluation view."""
    from qualitas.data.datasets import load_image
    from qualitas.data.transforms import size_sample
    from qualitas.training.run import input_size_of

    size = input_size_of(cfg.data)
    bb = model.features.backbone
    out = []
    for path in paths:
        (x,) = size_sample([load_image(path)], size, train=False)
        out.append(bb.raw_features(model.features.normalize(x[None])).double()[0])
    return torch.stack(out)


def probe_classes(cfg: TrainConfig, *, out: str | Path | None = None) -> dict:
    """Ridge onto one-hot labels (strength picked on val), top-1 accuracy on val and test."""
    from qualitas.data.splits import assign_splits
    from qualitas.models import build_model
    from qualitas.training.probe import BN_EPS, ridge
    from qualitas.training.run import data_paths, open_run_folder

    manifest, root = data_paths(cfg.data)
    records = read_manifest(manifest)
    names = sorted({str(r.extra["label"]) for r in records})
    if len(names) < 2:
        raise ConfigError(f"{manifest}: a classification probe needs at least 2 labels, found {names}")
    splits = assign_splits(records, cfg.data.split_ratios, cfg.data.split_seed)
    if not splits["train"] or not splits["val"]:
        raise ConfigError(f"{manifest}: the train and val splits must not be empty")
    alphas = [float(a) for a in cfg.trainer.probe_alphas]
    if not alphas or min(alphas) <= 0:
        raise ConfigError("trainer.probe_alphas must be positive numbers")
    model = build_model(cfg.model["name"], **cfg.model_kwargs).eval()
    with open_run_folder(cfg, out) as folder:
        folder.started = True
        feats, labels = {}, {}
        for split, idx in splits.items():
            if idx:
                feats[split] = _features(model, [resolve_under(root, records[i].path) for i in idx], cfg)
                labels[split] = torch.tensor([names.index(str(records[i].extra["label"])) for i in idx])
        mu = feats["train"].mean(dim=0)
        sigma = (feats["train"].var(dim=0, unbiased=False) + BN_EPS).sqrt()
        onehot = torch.nn.functional.one_hot(labels["train"], len(names)).double()
        z = {s: (f - mu) / sigma for s, f in feats.items()}

        def top1(split: str, w: torch.Tensor, b: torch.Tensor) -> float:
            return float(((z[split] @ w + b).argmax(dim=1) == labels[split]).double().mean())

        best: tuple[float, float, torch.Tensor, torch.Tensor] | None = None
        for alpha in alphas:
            w, b = ridge(z["train"], onehot, alpha)
            acc = top1("val", w, b)
            if best is None or acc > best[0]:
                best = (acc, alpha, w, b)
        assert best is not None  # alphas is non-empty (checked above)
        acc, alpha, w, b = best
        result = {
            "task": "classification",
            "run_dir": str(folder.path),
            "classes": names,
            "alpha": alpha,
            "val": {"top1": acc, "n": len(splits["val"])},
            "test": {"top1": top1("test", w, b), "n": len(splits["test"])} if "test" in z else {},
            "features": int(mu.numel()),
        }
        atomic_write_text(folder.path / "config.yaml", cfg.to_yaml())
        atomic_write_text(folder.path / "metrics.json", json.dumps(result, indent=1))
        log.info("probe run %s: val top-1 %.4f (alpha %g)", folder.path, acc, alpha)
        return result


def format_result(res: dict) -> str:
    """One line per split: SROCC/PLCC (quality) or top-1 (classification)."""
    lines = [f"run directory: {res['run_dir']}"]
    for split in ("val", "test"):
        fig = res.get(split) or {}
        if not fig:
            continue
        if res["task"] == "classification":
            lines.append(f"{split}: top-1 {fig['top1']:.4f} ({fig['n']} images)")
        else:
            parts = [
                f"{k.upper()} {fig[k]:.4f}" for k in ("srocc", "plcc") if k in fig and math.isfinite(fig[k])
            ]
            lines.append(f"{split}: {', '.join(parts) or 'n/a'} ({int(fig.get('n', 0))} items)")
    return "\n".join(lines)

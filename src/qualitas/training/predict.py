"""Evaluate a trained run on a manifest: figures, per-item predictions, scatter plot.

Inference is a plain loop over the data pipeline (no Lightning): the model is an
``nn.Module`` and evaluation needs no optimiser state.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from qualitas.data.datasets import DATASETS, DataError, ScoreNorm, check_records
from qualitas.data.manifest import read_manifest
from qualitas.data.sampling import ClipSampling
from qualitas.data.splits import assign_splits
from qualitas.data.transforms import InputSize
from qualitas.errors import UsageError
from qualitas.files import atomic_write_text
from qualitas.training.run import load_trained
from qualitas.training.task import dedupe_and_aggregate

log = logging.getLogger("qualitas.training")


def input_size_from(d: dict) -> InputSize:
    size = d.get("size")
    return InputSize(
        mode=d.get("mode", "none"),
        size=tuple(size) if size else None,
        resize_short=int(d.get("resize_short", 0)),
        grid=int(d.get("grid", 7)),
        patch=int(d.get("patch", 32)),
        hflip=False,
    )


@torch.no_grad()
def predict_scores(
    model: torch.nn.Module,
    info: dict,
    dataset,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[list[int], list[float], list[float], int]:
    """Predict every item of ``dataset`` in MOS units, clips averaged per item.

    Returns ``(items, predictions, mos, skipped)``.
    """
    from qualitas.data.datasets import collate_skip

    norm = ScoreNorm.from_dict(info.get("score_norm", {}))
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_skip
    )
    idx, item, pred, mos, skipped = [], [], [], [], 0
    fr = bool(info.get("full_reference"))
    for batch in loader:
        skipped += int(batch["skipped"])
        if batch["size"] == 0:
            continue
        x = batch["input"].to(device)
        out = model(x, batch["ref"].to(device)) if fr else model(x)
        out = out.float().cpu()
        score = out @ model.bins.float().cpu() if out.ndim == 2 else norm.inverse(out)
        idx.append(batch["index"])
        item.append(batch["item"])
        pred.append(score.double())
        mos.append(batch["mos"].double())
    if not idx:
        raise DataError("no item could be decoded")
    items, p, m, _ = dedupe_and_aggregate(torch.cat(idx), torch.cat(item), torch.cat(pred), torch.cat(mos))
    return items.tolist(), p.tolist(), m.tolist(), skipped


def evaluate_run(
    path: str | Path,
    *,
    manifest: str | Path | None = None,
    root: str | Path | None = None,
    split: str | None = None,
    out: str | Path | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str = "cpu",
) -> dict:
    """Evaluate a run dir or checkpoint; writes ``out`` (JSON) and ``<out>.png`` (scatter).

    Without ``manifest`` the run's own manifest and split (same seed) are used, ``split``
    defaulting to ``test`` (``val`` when the run had no test rows). With a ``manifest``,
    all rows are scored unless ``split`` selects a subset.
    """
    from qualitas.evaluation.correlation import evaluate

    model, info = load_trained(path, device=device)
    own = manifest is None
    if manifest is None:
        if not info.get("manifest"):
            raise UsageError("this checkpoint does not name its manifest: pass --manifest and --root")
        manifest, root = info["manifest"], root or info.get("root")
    manifest = Path(manifest)
    root = Path(root) if root is not None else manifest.parent
    records = read_manifest(manifest)
    target = info.get("target", "mos")
    report = check_records(
        records,
        root,
        need="votes" if target == "votes" else "mos",
        full_reference=bool(info.get("full_reference")),
    )
    if report.problems:
        log.warning("%s; those rows are not evaluated", report.summary(str(manifest)))
    bad = report.bad_lines
    good = [r for i, r in enumerate(records) if i not in bad]
    if split is None and own:
        parts = assign_splits(
            good,
            info.get("split_ratios") or {"train": 0.7, "val": 0.1, "test": 0.2},
            int(info.get("split_seed", 0)),
        )
        split = "test" if parts["test"] else "val"
    if split not in (None, "all"):
        parts = assign_splits(
            good,
            info.get("split_ratios") or {"train": 0.7, "val": 0.1, "test": 0.2},
            int(info.get("split_seed", 0)),
        )
        if split not in parts:
            raise UsageError(f"--split must be train, val, test or all, got '{split}'")
        good = [good[i] for i in parts[split]]
    good = [r for r in good if r.path]
    if not good:
        raise DataError(f"{manifest}: no rows to evaluate in split '{split}'")
    name = info.get("dataset", "image")
    cls = DATASETS.get("image" if name == "pairs" else name)
    sampling = info.get("sampling") or {}
    ds = cls(
        good,
        root,
        train=False,
        input_size=input_size_from(info.get("input_size") or {}),
        score_norm=ScoreNorm.from_dict(info.get("score_norm", {})),
        full_reference=bool(info.get("full_reference")),
        sampling=ClipSampling(**sampling) if sampling else ClipSampling(),
        eval_clips=int(info.get("eval_clips", 1)),
        frame_counts=report.frame_counts,
        vote_bins=info.get("vote_bins"),
    )
    items, pred, mos, skipped = predict_scores(
        model, info, ds, batch_size=batch_size, num_workers=num_workers, device=device
    )
    pt, mt = torch.tensor(pred), torch.tensor(mos)
    ok = torch.isfinite(pt) & torch.isfinite(mt)
    figures = evaluate(pt[ok].numpy(), mt[ok].numpy()) if int(ok.sum()) >= 3 else {}
    results = {
        "checkpoint": info["checkpoint"],
        "manifest": str(manifest),
        "split": split or "all",
        "n": len(items),
        "skipped": skipped,
        "bad_rows": len(bad),
        "metrics": {k: float(v) for k, v in figures.items() if isinstance(v, (int, float))},
        "predictions": [
            {"path": good[i].path, "pred": p, "mos": m if m == m else None}
            for i, p, m in zip(items, pred, mos)
        ],
    }
    if out is not None:
        out = Path(out)
        atomic_write_text(out, json.dumps(results, indent=1))
        if int(ok.sum()) >= 3:
            try:
                from qualitas.evaluation.plots import scatter

                scatter(
                    pt[ok].numpy(),
                    mt[ok].numpy(),
                    out.with_suffix(".png"),
                    title=(
                        f"{Path(info['checkpoint']).name} on {manifest.name}, "
                        f"{results['split']} split (n={int(ok.sum())})"
                    ),
                )
                results["plot"] = str(out.with_suffix(".png"))
            except ImportError as err:
                log.warning("scatter plot not written: %s", err)
    return results

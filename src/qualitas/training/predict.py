"""Evaluate a trained run on a manifest: figures, per-item predictions, scatter plot.

Inference is a plain loop over the data pipeline (no Lightning): the model is an
``nn.Module`` and evaluation needs no optimiser state.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from qualitas.data.datasets import DATASETS, DataError, check_records, collate_skip
from qualitas.data.manifest import Record, read_manifest
from qualitas.data.sampling import ClipSampling
from qualitas.data.splits import assign_splits
from qualitas.data.transforms import InputSize
from qualitas.errors import UsageError
from qualitas.files import atomic_write_text
from qualitas.models.checkpoint import RunInfo, load_run
from qualitas.models.heads import output_to_score
from qualitas.training.task import dedupe_and_aggregate

log = logging.getLogger("qualitas.training")


def input_size_from(d: dict) -> InputSize:
    """A stored input-size policy for evaluation (no flips): ``InputSize.from_dict``."""
    return dataclasses.replace(InputSize.from_dict(d), hflip=False)


@torch.no_grad()
def predict_scores(
    model: torch.nn.Module,
    info: RunInfo | dict,
    dataset,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[list[int], list[float], list[float], int]:
    """Predict every item of ``dataset`` in MOS units, clips averaged per item.

    Returns ``(items, predictions, mos, skipped)``.
    """
    run = info if isinstance(info, RunInfo) else RunInfo.from_dict(info)
    norm = run.score_norm
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_skip
    )
    idx, item, pred, mos, skipped = [], [], [], [], 0
    fr = run.full_reference
    for batch in loader:
        skipped += int(batch["skipped"])
        if batch["size"] == 0:
            continue
        x = batch["input"].to(device)
        out = model(x, batch["ref"].to(device)) if fr else model(x)
        out = out.float().cpu()
        bins = model.bins.float().cpu() if out.ndim == 2 else None
        score = output_to_score(out, bins, scale=norm.scale, shift=norm.shift)
        idx.append(batch["index"])
        item.append(batch["item"])
        pred.append(score.double())
        mos.append(batch["mos"].double())
    if not idx:
        raise DataError("no item could be decoded")
    items, p, m, _ = dedupe_and_aggregate(torch.cat(idx), torch.cat(item), torch.cat(pred), torch.cat(mos))
    return items.tolist(), p.tolist(), m.tolist(), skipped


def _manifest_of(
    info: RunInfo, manifest: str | Path | None, root: str | Path | None
) -> tuple[Path, Path, bool]:
    """(manifest, root, is the run's own): the run's manifest unless one is given."""
    own = manifest is None
    if manifest is None:
        if not info.manifest:
            raise UsageError("this checkpoint does not name its manifest: pass --manifest and --root")
        manifest, root = info.manifest, root or info.root
    manifest = Path(manifest)
    return manifest, Path(root) if root is not None else manifest.parent, own


def _rows_of_split(
    info: RunInfo, good: list[Record], split: str | None, own: bool
) -> tuple[str | None, list[Record]]:
    """The rows to evaluate: the run's own split (same seed), ``test`` by default (``val``
    when the run had no test rows), or all rows of a foreign manifest."""
    if split is None and own:
        parts = assign_splits(good, info.split_ratios, info.split_seed)
        split = "test" if parts["test"] else "val"
    if split not in (None, "all"):
        parts = assign_splits(good, info.split_ratios, info.split_seed)
        if split not in parts:
            raise UsageError(f"--split must be train, val, test or all, got '{split}'")
        good = [good[i] for i in parts[split]]
    return split, [r for r in good if r.path]


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

    model, info = load_run(path, device=device)
    manifest, root, own = _manifest_of(info, manifest, root)
    records = read_manifest(manifest)
    report = check_records(
        records,
        root,
        need="votes" if info.target == "votes" else "mos",
        full_reference=info.full_reference,
    )
    if report.problems:
        log.warning("%s; those rows are not evaluated", report.summary(str(manifest)))
    bad = report.bad_lines
    split, good = _rows_of_split(info, [r for i, r in enumerate(records) if i not in bad], split, own)
    if not good:
        raise DataError(f"{manifest}: no rows to evaluate in split '{split}'")
    name = info.dataset
    cls = DATASETS.get("image" if name == "pairs" else name)
    ds = cls(
        good,
        root,
        train=False,
        input_size=dataclasses.replace(info.input_size, hflip=False),
        score_norm=info.score_norm,
        full_reference=info.full_reference,
        sampling=info.sampling or ClipSampling(),
        eval_clips=info.eval_clips,
        frame_counts=report.frame_counts,
        vote_bins=info.vote_bins,
    )
    items, pred, mos, skipped = predict_scores(
        model, info, ds, batch_size=batch_size, num_workers=num_workers, device=device
    )
    pt, mt = torch.tensor(pred), torch.tensor(mos)
    ok = torch.isfinite(pt) & torch.isfinite(mt)
    figures = evaluate(pt[ok].numpy(), mt[ok].numpy()) if int(ok.sum()) >= 3 else {}
    results = {
        "checkpoint": info.checkpoint,
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
                        f"{Path(str(info.checkpoint)).name} on {manifest.name}, "
                        f"{results['split']} split (n={int(ok.sum())})"
                    ),
                )
                results["plot"] = str(out.with_suffix(".png"))
            except ImportError as err:
                log.warning("scatter plot not written: %s", err)
    return results

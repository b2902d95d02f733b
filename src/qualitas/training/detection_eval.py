"""``qualitas eval`` / ``data check`` / ``data browse`` for detection and keypoint configs
and runs: COCO mAP (OKS AP) on a split, the COCO results file, pictures of predicted and
true boxes. Inference is a plain loop (no Lightning), as for the other tasks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from qualitas.data.manifest import atomic_write_text
from qualitas.errors import UsageError
from qualitas.evaluation.detection import detection_figures, to_detections, write_coco_results
from qualitas.training.config import TrainConfig, config_and_weights

log = logging.getLogger("qualitas.training")


def evaluate_detection(
    path: str | Path,
    *,
    weights: str | Path | None = None,
    overrides: list[str] | None = None,
    split: str | None = None,
    out: str | Path = "results.json",
    show_dir: str | Path | None = None,
    max_show: int = 50,
    score_min: float = 0.3,
    batch_size: int = 8,
    device: str = "cpu",
) -> dict:
    """Evaluate a detector on one split of its data (``test`` when configured, else ``val``).

    Writes ``out``: the COCO results list (``image_id, category_id, bbox [x, y, w, h], score``
    [, ``keypoints``]; what ``pycocotools``' ``loadRes`` reads) and beside it
    ``<out>.metrics.json`` with the figures (per-class box AP included). ``show_dir``: up to
    ``max_show`` pictures with the detections scoring ``>= score_min`` (and skeletons).
    """
    from qualitas.models.checkpoint import load_run
    from qualitas.training.detection import prepare_detection_data

    cfg, model, info = config_and_weights(
        path, weights, overrides, lambda w: load_run(w, device=device), lambda info: info.config
    )
    if info.spec.get("arch") != "detector":
        raise UsageError(f"{weights or path}: not a detector run")
    data = prepare_detection_data(cfg, eval_only=True)
    ids = [int(v) for v in info.extra.get("category_ids") or data.labels.category_ids]
    if list(data.labels.category_ids) != ids or data.classes != list(
        info.extra.get("classes") or data.classes
    ):
        raise UsageError(
            f"the data's categories ({', '.join(data.classes[:4])}) differ from the model's "
            f"({', '.join(str(c) for c in (info.extra.get('classes') or [])[:4])})"
        )
    split = split or ("test" if data.datasets.get("test") is not None else "val")
    ds, gt = data.datasets.get(split), data.sets.get(split)
    if ds is None or gt is None:
        raise UsageError(f"no {split} split configured (data.{split})")
    preds: list = []
    shown = 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(ds), batch_size):
            items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
            outs = model([it["input"].to(device) for it in items])
            for it, o in zip(items, outs):
                preds.append(to_detections(o, ids))
                if show_dir is not None and shown < max_show:
                    _show(
                        it,
                        o,
                        data,
                        score_min,
                        Path(show_dir) / f"{shown:05d}_{Path(ds.images[it['index']].file).stem}.png",
                    )
                    shown += 1
    sigmas = data.sigmas or None
    figures = detection_figures(data.kind, gt, preds, sigmas=sigmas, per_class=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_coco_results(gt, preds, out)
    metrics_file = out.with_name(out.stem + ".metrics.json")
    result = {
        "task": cfg.task,
        "split": split,
        "n": len(preds),
        "classes": data.classes,
        "metrics": figures,
        "checkpoint": info.checkpoint,
        "detections": sum(len(p) for p in preds),
        "coco_results": str(out),
    }
    atomic_write_text(metrics_file, json.dumps(result, indent=1) + "\n")
    return {**result, "out": str(out), "metrics_file": str(metrics_file)}


def _show(item: dict, output: dict, data, score_min: float, path: Path) -> None:
    from PIL import Image

    from qualitas.evaluation.detection import draw_detections
    from qualitas.evaluation.vision import save_picture

    keep = output["scores"] >= score_min
    names = data.classes
    captions = [
        f"{names[int(v) - 1]} {float(s):.2f}" for v, s in zip(output["labels"][keep], output["scores"][keep])
    ]
    kps = output.get("keypoints")
    pic = draw_detections(
        item["input"],
        output["boxes"][keep],
        captions,
        keypoints=kps[keep] if kps is not None else None,
        skeleton=data.skeleton,
        labels=output["labels"][keep].tolist(),
    )
    save_picture(Image.fromarray(pic), path)


def check_detection_config(cfg: TrainConfig) -> dict:
    """``qualitas data check CONFIG`` for detection: every split read and checked (images
    opened, sizes against the annotation, boxes, categories, keypoints); boxes per class."""
    from qualitas.training.detection import prepare_detection_data

    data = prepare_detection_data(cfg, eval_only=True, check=True)
    return {
        "task": cfg.task,
        "kind": data.kind,
        "classes": data.classes,
        "splits": data.split_sizes(),
        "counts": data.counts,
    }


def browse_detection(cfg: TrainConfig, out: str | Path, *, split: str = "train", max_items: int = 100) -> int:
    """``qualitas data browse`` for detection: each image with its true boxes (class names)
    and keypoints with their skeleton, as PNGs in ``out``. Returns the number written."""
    from PIL import Image

    from qualitas.evaluation.detection import draw_detections
    from qualitas.evaluation.vision import save_picture
    from qualitas.training.detection import prepare_detection_data

    data = prepare_detection_data(cfg, eval_only=True)
    ds = data.datasets.get(split)
    if ds is None:
        raise UsageError(f"no {split} split configured (data.{split})")
    n = min(len(ds), max_items)
    for i in range(n):
        item = ds[i]
        t = item["target"]
        captions = [data.classes[int(v) - 1] for v in t["labels"]]
        pic = draw_detections(
            item["input"],
            t["boxes"],
            captions,
            keypoints=t.get("keypoints"),
            skeleton=data.skeleton,
            labels=t["labels"].tolist(),
        )
        save_picture(Image.fromarray(pic), Path(out) / f"{i:05d}_{Path(ds.images[i].file).stem}.png")
    return n

"""Detection and keypoint accuracy: COCO mAP, VOC mAP@0.5 and COCO keypoint (OKS) AP.

- :func:`coco_map` — COCO box AP (AP, AP50, AP75, small/medium/large, AR@1/10/100) through
  torchmetrics' ``MeanAveragePrecision`` with the faster-coco-eval backend (pycocotools as
  the alternative: both reproduce the official ``COCOeval``);
- :func:`keypoint_ap` — COCO OKS AP through faster-coco-eval's ``COCOeval`` (torchmetrics has no
  keypoint metric);
- :func:`voc_map` — Pascal VOC 2010+ AP at IoU 0.5 (all-point interpolation, ``difficult``
  objects neither matched as true nor counted as missed). Hand-written because no maintained
  library exposes VOC's protocol (torchmetrics and the COCO tools interpolate at 101 recall
  points and know no ``difficult`` flag); it follows the devkit's ``VOCevaldet`` and is tested
  against hand-computed cases.

Predictions are :class:`Detection` lists per image, boxes in the same pixel coordinates as
:mod:`qualitas.data.detection` (``x1, y1, x2, y2``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qualitas.data.detection import DetectionSet
from qualitas.data.manifest import atomic_write_text
from qualitas.errors import DependencyError, UsageError

COCO_PERSON_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
"""The per-keypoint OKS constants of COCO's 17 person keypoints (cocoeval.py)."""


@dataclass(frozen=True)
class Detection:
    """One predicted object: box (pixels, xyxy), category id, confidence, optional keypoints."""

    x1: float
    y1: float
    x2: float
    y2: float
    category: int
    score: float
    keypoints: tuple[float, ...] = ()


def _check_lengths(gt: DetectionSet, preds: list[list[Detection]]) -> None:
    if len(preds) != len(gt.images):
        raise UsageError(f"{len(preds)} prediction lists for {len(gt.images)} images")


def coco_map(
    gt: DetectionSet,
    preds: list[list[Detection]],
    *,
    backend: str = "faster_coco_eval",
    per_class: bool = False,
) -> dict:
    """COCO box mAP of ``preds`` (one list per image of ``gt``, same order).

    Returns ``map, map_50, map_75, map_small, map_medium, map_large, mar_1, mar_10, mar_100``
    (floats; -1 where no object of that size exists) and, with ``per_class``,
    ``per_class: {name: AP}``. Crowd boxes are ignored as COCO does.
    """
    import torch

    try:
        from torchmetrics.detection import MeanAveragePrecision
    except ImportError:  # pragma: no cover - torchmetrics comes with the train extra
        raise DependencyError("COCO mAP needs torchmetrics: pip install 'qualitas[train]'") from None
    _check_lengths(gt, preds)
    metric = MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", backend=backend, class_metrics=per_class
    )
    p_list, t_list = [], []
    for im, dets in zip(gt.images, preds):
        p_list.append(
            {
                "boxes": torch.tensor([[d.x1, d.y1, d.x2, d.y2] for d in dets], dtype=torch.float64).reshape(
                    -1, 4
                ),
                "scores": torch.tensor([d.score for d in dets], dtype=torch.float64),
                "labels": torch.tensor([d.category for d in dets], dtype=torch.int64),
            }
        )
        t_list.append(
            {
                "boxes": torch.tensor(
                    [[b.x1, b.y1, b.x2, b.y2] for b in im.boxes], dtype=torch.float64
                ).reshape(-1, 4),
                "labels": torch.tensor([b.category for b in im.boxes], dtype=torch.int64),
                "iscrowd": torch.tensor([int(b.iscrowd) for b in im.boxes], dtype=torch.int64),
            }
        )
    metric.update(p_list, t_list)
    res = metric.compute()
    keys = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100")
    out = {k: float(res[k]) for k in keys}
    if per_class:
        classes = res["classes"].reshape(-1).tolist()
        aps = res["map_per_class"].reshape(-1).tolist()
        out["per_class"] = {gt.categories.get(int(c), str(c)): float(a) for c, a in zip(classes, aps)}
    return out


def coco_results(gt: DetectionSet, preds: list[list[Detection]]) -> list[dict]:
    """The COCO results list (``image_id, category_id, bbox [x, y, w, h], score[, keypoints]``)."""
    _check_lengths(gt, preds)
    rows = []
    for n, (im, dets) in enumerate(zip(gt.images, preds), 1):
        for d in dets:
            row = {
                "image_id": im.id or n,
                "category_id": d.category,
                "bbox": [d.x1, d.y1, d.x2 - d.x1, d.y2 - d.y1],
                "score": d.score,
            }
            if d.keypoints:
                row["keypoints"] = list(d.keypoints)
            rows.append(row)
    return rows


def write_coco_results(gt: DetectionSet, preds: list[list[Detection]], path: str | os.PathLike) -> Path:
    """Write the COCO results JSON (what ``--out`` writes; pycocotools' ``loadRes`` reads it)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(coco_results(gt, preds)))
    return path


def keypoint_ap(
    gt: DetectionSet, preds: list[list[Detection]], *, sigmas: tuple[float, ...] | None = None
) -> dict:
    """COCO keypoint AP (OKS): ``ap, ap_50, ap_75, ap_medium, ap_large, ar`` through faster-coco-eval.

    ``sigmas`` are the per-keypoint OKS constants: COCO's person values when the set has 17
    keypoints and none are given; otherwise required (one per keypoint name).
    """
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:  # pragma: no cover - faster-coco-eval is in the train extra
        raise DependencyError("keypoint AP needs faster-coco-eval: pip install 'qualitas[train]'") from None
    from qualitas.data.detection import coco_dict

    k = len(gt.keypoint_names)
    if k == 0:
        raise UsageError("keypoint AP needs a set with keypoint names (a COCO person-keypoints file)")
    if sigmas is None:
        if k != len(COCO_PERSON_SIGMAS):
            raise UsageError(
                f"keypoint AP: give one OKS sigma per keypoint ({k} keypoints, COCO's person set has 17)"
            )
        sigmas = COCO_PERSON_SIGMAS
    if len(sigmas) != k:
        raise UsageError(f"keypoint AP: {len(sigmas)} sigmas for {k} keypoints")
    doc = coco_dict(gt)
    for a in doc["annotations"]:
        a.setdefault("keypoints", [0.0] * (3 * k))
        a.setdefault("num_keypoints", 0)
    coco_gt = COCO()
    coco_gt.dataset = doc
    coco_gt.createIndex()
    results = [r for r in coco_results(gt, preds) if r.get("keypoints")]
    if not results:
        return {"ap": 0.0, "ap_50": 0.0, "ap_75": 0.0, "ap_medium": 0.0, "ap_large": 0.0, "ar": 0.0}
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval_faster(
        coco_gt, coco_dt, iouType="keypoints", kpt_oks_sigmas=list(sigmas), print_function=lambda *a: None
    )
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    s = ev.stats
    return {
        "ap": float(s[0]),
        "ap_50": float(s[1]),
        "ap_75": float(s[2]),
        "ap_medium": float(s[3]),
        "ap_large": float(s[4]),
        "ar": float(s[5]),
    }


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(4,)`` box with ``(N, 4)`` boxes, continuous coordinates (no +1)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ AP: area under the precision envelope at every recall step (all points)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def voc_map(gt: DetectionSet, preds: list[list[Detection]], *, iou: float = 0.5) -> dict:
    """Pascal VOC mAP at ``iou`` (default 0.5): ``{"map": float, "per_class": {name: AP}}``.

    Per class, detections sorted by score are greedily matched to the unmatched ground truth
    box of highest IoU >= ``iou``; a match to a ``difficult`` (or crowd) box counts neither
    as true nor false positive; classes without any non-difficult ground truth are left out
    of the mean.
    """
    _check_lengths(gt, preds)
    per_class = {}
    for cid, name in sorted(gt.categories.items()):
        gts = {}
        n_pos = 0
        for i, im in enumerate(gt.images):
            boxes = [b for b in im.boxes if b.category == cid]
            if boxes:
                arr = np.array([[b.x1, b.y1, b.x2, b.y2] for b in boxes], dtype=np.float64)
                hard = np.array([b.difficult or b.iscrowd for b in boxes])
                gts[i] = (arr, hard, np.zeros(len(boxes), dtype=bool))
                n_pos += int((~hard).sum())
        dets = [(d.score, i, d) for i, ds in enumerate(preds) for d in ds if d.category == cid]
        if n_pos == 0:
            continue
        dets.sort(key=lambda t: -t[0])
        tp = np.zeros(len(dets))
        fp = np.zeros(len(dets))
        for j, (_, i, d) in enumerate(dets):
            if i not in gts:
                fp[j] = 1
                continue
            arr, hard, used = gts[i]
            ious = _iou(np.array([d.x1, d.y1, d.x2, d.y2]), arr)
            k = int(np.argmax(ious))
            if ious[k] >= iou:
                if hard[k]:
                    continue
                if not used[k]:
                    tp[j], used[k] = 1, True
                else:
                    fp[j] = 1
            else:
                fp[j] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / n_pos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        per_class[name] = average_precision(rec, prec) if len(dets) else 0.0
    return {"map": float(np.mean(list(per_class.values()))) if per_class else 0.0, "per_class": per_class}


# ---------------------------------------------------------------- task figures (training, eval)

DETECTION_FIGURES: dict[str, tuple[str, ...]] = {
    "detection": (
        "map",
        "map50",
        "map75",
        "map_small",
        "map_medium",
        "map_large",
        "mar1",
        "mar10",
        "mar100",
        "voc_map50",
    ),
    "keypoints": ("map", "map50", "map75", "map_medium", "map_large", "mar", "box_map", "box_map50"),
}
"""Figures of ``task: detection`` (COCO box AP/AR, VOC mAP@0.5) and ``task: keypoints`` (COCO
OKS AP/AR, and the box AP of the same detections); any can be ``trainer.monitor``."""
DEFAULT_KEYPOINT_SIGMA = 0.1
"""OKS constant per keypoint for sets that are not COCO's 17 person keypoints and give none
(``data.keypoint_sigmas``): a tolerance of about a tenth of the object's scale."""


def keypoint_sigmas(num_keypoints: int, given: object = None) -> tuple[float, ...]:
    """The OKS constants: ``given`` (one number for all, or one per keypoint), COCO's person
    values for 17 keypoints, else :data:`DEFAULT_KEYPOINT_SIGMA` each."""
    if given is None:
        if num_keypoints == len(COCO_PERSON_SIGMAS):
            return COCO_PERSON_SIGMAS
        return (DEFAULT_KEYPOINT_SIGMA,) * num_keypoints
    if isinstance(given, (int, float)) and not isinstance(given, bool):
        values = (float(given),) * num_keypoints
    elif isinstance(given, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in given
    ):
        values = tuple(float(v) for v in given)
    else:
        raise UsageError(f"data.keypoint_sigmas must be a number or a list of numbers, got {given!r}")
    if len(values) != num_keypoints or not all(v > 0 for v in values):
        raise UsageError(f"data.keypoint_sigmas: give {num_keypoints} positive numbers, got {list(values)}")
    return values


def to_detections(output: dict, category_ids: tuple[int, ...] | list[int]) -> list[Detection]:
    """One torchvision detector output (``boxes (N, 4)``, ``labels (N,)`` 1..K, ``scores``,
    optional ``keypoints (N, P, 3)``) -> :class:`Detection` list with dataset category ids
    (label ``i`` is ``category_ids[i - 1]``)."""
    boxes = output["boxes"].detach().cpu().double().tolist()
    labels = output["labels"].detach().cpu().tolist()
    scores = output["scores"].detach().cpu().double().tolist()
    kps = output.get("keypoints")
    kp_list = kps.detach().cpu().double().flatten(1).tolist() if kps is not None else None
    out = []
    for i, (b, lab, sc) in enumerate(zip(boxes, labels, scores)):
        kp: tuple[float, ...] = ()
        if kp_list is not None:
            row = kp_list[i]
            # predicted visibility is not scored by COCO; written as 1 (labelled)
            kp = tuple(v for j in range(0, len(row), 3) for v in (row[j], row[j + 1], 1.0))
        out.append(Detection(*b, category=int(category_ids[int(lab) - 1]), score=float(sc), keypoints=kp))
    return out


def detection_figures(
    kind: str,
    gt: DetectionSet,
    preds: list[list[Detection]],
    *,
    sigmas: tuple[float, ...] | None = None,
    per_class: bool = False,
) -> dict:
    """The task figures (:data:`DETECTION_FIGURES`) of ``preds`` against ``gt``; with
    ``per_class`` also ``per_class: {name: AP}`` (box AP)."""
    box = coco_map(gt, preds, per_class=per_class)
    out: dict = {}
    if kind == "keypoints":
        kp = keypoint_ap(gt, preds, sigmas=sigmas)
        out = {
            "map": kp["ap"],
            "map50": kp["ap_50"],
            "map75": kp["ap_75"],
            "map_medium": kp["ap_medium"],
            "map_large": kp["ap_large"],
            "mar": kp["ar"],
            "box_map": box["map"],
            "box_map50": box["map_50"],
        }
    else:
        out = {
            "map": box["map"],
            "map50": box["map_50"],
            "map75": box["map_75"],
            "map_small": box["map_small"],
            "map_medium": box["map_medium"],
            "map_large": box["map_large"],
            "mar1": box["mar_1"],
            "mar10": box["mar_10"],
            "mar100": box["mar_100"],
            "voc_map50": voc_map(gt, preds)["map"],
        }
    out["n"] = float(len(gt.images))
    if per_class:
        out["per_class"] = box["per_class"]
    return out


# ---------------------------------------------------------------- pictures


def draw_detections(
    image,
    boxes,
    captions: list[str],
    *,
    keypoints=None,
    skeleton: tuple[tuple[int, int], ...] | list | None = None,
    labels=None,
    min_width: int = 384,
) -> np.ndarray:
    """``(3, H, W)`` float image in ``[0, 1]`` with boxes (``(N, 4)`` xyxy px), one caption
    each, and keypoints ``(N, P, 2|3)`` joined by ``skeleton`` (COCO's 1-based pairs) drawn
    with ``torchvision.utils.draw_bounding_boxes`` / ``draw_keypoints``; small images are
    upscaled (nearest) to ``min_width`` first. Colours follow ``labels`` (one per class).
    Returns ``(H', W', 3)`` uint8."""
    import torch
    import torch.nn.functional as F
    from torchvision.utils import draw_bounding_boxes, draw_keypoints

    img = image.detach().float().cpu().clamp(0, 1)
    f = max(1, -(-min_width // int(img.shape[-1])))
    if f > 1:
        img = F.interpolate(img[None], scale_factor=f, mode="nearest")[0]
    u8 = (img * 255 + 0.5).to(torch.uint8)
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4) * f
    palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"]
    lab = [int(v) for v in (labels if labels is not None else [1] * len(boxes))]
    colors = [palette[(v - 1) % len(palette)] for v in lab]
    if len(boxes):
        u8 = draw_bounding_boxes(u8, boxes, labels=list(captions), colors=colors, width=2)
    if keypoints is not None and len(keypoints):
        kp = torch.as_tensor(keypoints, dtype=torch.float32)[..., :2] * f
        conn = [(int(a) - 1, int(b) - 1) for a, b in skeleton or ()] or None
        visible = None
        if torch.as_tensor(keypoints).shape[-1] == 3:
            visible = torch.as_tensor(keypoints)[..., 2] > 0
        u8 = draw_keypoints(
            u8, kp, connectivity=conn, colors="#ffe119", radius=3, width=2, visibility=visible
        )
    return u8.permute(1, 2, 0).numpy()

"""COCO mAP (torchmetrics + faster-coco-eval) against pycocotools' own COCOeval, VOC AP on
hand-computed cases, COCO keypoint AP."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from qualitas.data.detection import Box, DetectionSet, DetImage, write_coco
from qualitas.evaluation.detection import (
    Detection,
    average_precision,
    coco_map,
    keypoint_ap,
    voc_map,
    write_coco_results,
)


def _random_case(seed: int = 0, images: int = 12) -> tuple[DetectionSet, list[list[Detection]]]:
    rng = np.random.default_rng(seed)
    ims, preds = [], []
    for i in range(images):
        boxes, dets = [], []
        for _ in range(rng.integers(0, 5)):
            x, y = rng.uniform(0, 150, 2)
            w, h = rng.uniform(4, 90, 2)
            cat = int(rng.integers(1, 4))
            boxes.append(Box(x, y, min(x + w, 200), min(y + h, 200), cat, iscrowd=bool(rng.random() < 0.1)))
            if rng.random() < 0.8:  # a jittered detection of it, sometimes with the wrong class
                j = rng.normal(0, 4, 4)
                dets.append(
                    Detection(
                        x + j[0],
                        y + j[1],
                        x + w + j[2],
                        y + h + j[3],
                        cat if rng.random() < 0.9 else 1,
                        float(rng.random()),
                    )
                )
        for _ in range(rng.integers(0, 3)):  # false positives
            x, y = rng.uniform(0, 150, 2)
            dets.append(Detection(x, y, x + 30, y + 20, int(rng.integers(1, 4)), float(rng.random() * 0.5)))
        ims.append(DetImage(f"{i}.jpg", 200, 200, tuple(boxes), i + 1))
        preds.append(dets)
    return DetectionSet(ims, {1: "car", 2: "person", 3: "bike"}), preds


def test_perfect_predictions_score_one() -> None:
    gt, _ = _random_case()
    perfect = [
        [Detection(b.x1, b.y1, b.x2, b.y2, b.category, 1.0) for b in im.boxes if not b.iscrowd]
        for im in gt.images
    ]
    assert coco_map(gt, perfect)["map"] == pytest.approx(1.0)
    assert voc_map(gt, perfect)["map"] == pytest.approx(1.0)


def test_coco_map_matches_pycocotools_cocoeval_on_written_files(tmp_path: Path) -> None:
    pycocotools = pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    assert pycocotools
    gt, preds = _random_case(seed=3, images=20)
    ours = coco_map(gt, preds)
    assert 0.1 < ours["map"] < 0.9  # a real, non-trivial case
    assert coco_map(gt, preds, backend="pycocotools")["map"] == pytest.approx(ours["map"], abs=1e-6)
    # the official evaluator on the files qualitas writes (annotations and --out results)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(write_coco(gt, tmp_path / "gt.json")))
        coco_dt = coco_gt.loadRes(str(write_coco_results(gt, preds, tmp_path / "results.json")))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours["map"] == pytest.approx(ev.stats[0], abs=1e-6)
    assert ours["map_50"] == pytest.approx(ev.stats[1], abs=1e-6)
    assert ours["mar_100"] == pytest.approx(ev.stats[8], abs=1e-6)


def test_voc_ap_hand_computed() -> None:
    gt = DetectionSet(
        [DetImage("a.jpg", 100, 100, (Box(0, 0, 10, 10, 1), Box(50, 50, 70, 70, 1)))], {1: "car"}
    )
    preds = [
        [
            Detection(0, 0, 10, 10, 1, 0.9),
            Detection(80, 80, 90, 90, 1, 0.8),
            Detection(51, 50, 70, 70, 1, 0.7),
        ]
    ]
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: all-point AP = 0.5 * 1 + 0.5 * 2/3
    assert voc_map(gt, preds)["per_class"]["car"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # a second detection of the same object is a false positive
    dup = [[Detection(0, 0, 10, 10, 1, 0.9), Detection(0, 0, 10, 10, 1, 0.85)]]
    assert voc_map(gt, dup)["map"] == pytest.approx(0.5)
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)


def test_voc_difficult_objects_neither_hit_nor_miss() -> None:
    gt = DetectionSet(
        [DetImage("a.jpg", 100, 100, (Box(0, 0, 10, 10, 1), Box(50, 50, 70, 70, 1, difficult=True)))],
        {1: "car"},
    )
    only_easy = [[Detection(0, 0, 10, 10, 1, 0.9)]]
    with_hard = [[Detection(0, 0, 10, 10, 1, 0.9), Detection(50, 50, 70, 70, 1, 0.95)]]
    assert voc_map(gt, only_easy)["map"] == pytest.approx(1.0)  # the difficult box is not missed
    assert voc_map(gt, with_hard)["map"] == pytest.approx(1.0)  # nor is hitting it a false positive


def test_keypoint_ap_perfect_and_perturbed() -> None:
    names = ("a", "b", "c")
    ims, perfect, shifted = [], [], []
    for i in range(6):
        x = 10 + 5 * i
        kps = (x + 5.0, 20.0, 2.0, x + 15.0, 40.0, 2.0, x + 10.0, 60.0, 1.0)
        ims.append(DetImage(f"{i}.jpg", 120, 100, (Box(x, 10, x + 30, 80, 1, keypoints=kps),), i + 1))
        perfect.append([Detection(x, 10, x + 30, 80, 1, 0.9, kps)])
        moved = tuple(v + (6.0 if j % 3 != 2 else 0.0) for j, v in enumerate(kps))
        shifted.append([Detection(x, 10, x + 30, 80, 1, 0.9, moved)])
    gt = DetectionSet(ims, {1: "person"}, keypoint_names=names, skeleton=((1, 2), (2, 3)))
    sig = (0.05, 0.05, 0.05)
    assert keypoint_ap(gt, perfect, sigmas=sig)["ap"] == pytest.approx(1.0)
    assert keypoint_ap(gt, shifted, sigmas=sig)["ap"] < 0.9
    with pytest.raises(Exception, match="one OKS sigma per keypoint"):
        keypoint_ap(gt, perfect)

"""COCO box mAP evaluation time: qualitas (torchmetrics + faster-coco-eval) vs pycocotools.

Same synthetic ground truth and predictions for every evaluator (COCO-val-like density:
about 7 objects and up to 100 detections per image, 80 categories); each evaluator is timed
on its whole call, from in-memory records to the summary, and its AP is printed so the rows
can be seen to agree.

    .venv/bin/python benchmarks/bench_detection_eval.py --images 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from qualitas.data.detection import Box, DetectionSet, DetImage, write_coco
from qualitas.evaluation.detection import Detection, coco_map, voc_map, write_coco_results


def make_case(images: int, seed: int = 0) -> tuple[DetectionSet, list[list[Detection]]]:
    rng = np.random.default_rng(seed)
    ims, preds = [], []
    for i in range(images):
        boxes, dets = [], []
        for _ in range(int(rng.poisson(7))):
            x, y = rng.uniform(0, 560), rng.uniform(0, 420)
            w, h = np.exp(rng.uniform(np.log(8), np.log(300), 2))
            cat = int(rng.integers(1, 81))
            boxes.append(Box(x, y, min(x + w, 640), min(y + h, 480), cat))
            for _ in range(int(rng.integers(1, 4))):
                j = rng.normal(0, 0.08, 4) * [w, h, w, h]
                dets.append(
                    Detection(x + j[0], y + j[1], x + w + j[2], y + h + j[3], cat, float(rng.random()))
                )
        while len(dets) < 100 and rng.random() < 0.97:
            x, y = rng.uniform(0, 560), rng.uniform(0, 420)
            dets.append(
                Detection(
                    x,
                    y,
                    x + rng.uniform(5, 80),
                    y + rng.uniform(5, 80),
                    int(rng.integers(1, 81)),
                    float(rng.random() * 0.6),
                )
            )
        ims.append(DetImage(f"{i:06d}.jpg", 640, 480, tuple(boxes), i + 1))
        preds.append(dets[:100])
    return DetectionSet(ims, {c: f"class{c}" for c in range(1, 81)}), preds


def pycocotools_direct(gt: DetectionSet, preds: list[list[Detection]], tmp: Path) -> float:
    """The official evaluator on the JSON files (what users of pycocotools run)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(write_coco(gt, tmp / "gt.json")))
        coco_dt = coco_gt.loadRes(json.loads(write_coco_results(gt, preds, tmp / "res.json").read_text()))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    gt, preds = make_case(args.images)
    n_det = sum(len(p) for p in preds)
    print(f"{args.images} images, {gt.num_boxes} objects, {n_det} detections, 80 categories")
    with tempfile.TemporaryDirectory() as d:
        runs = {
            "qualitas coco_map (torchmetrics, faster_coco_eval)": lambda: coco_map(gt, preds)["map"],
            "qualitas coco_map (torchmetrics, pycocotools backend)": lambda: coco_map(
                gt, preds, backend="pycocotools"
            )["map"],
            "pycocotools COCOeval on the JSON files": lambda: pycocotools_direct(gt, preds, Path(d)),
            "qualitas voc_map (AP@0.5, all-point)": lambda: voc_map(gt, preds)["map"],
        }
        rows = {}
        for name, fn in runs.items():
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                value = fn()
                times.append(time.perf_counter() - t)
            rows[name] = (statistics.median(times), value)
    ref = rows["pycocotools COCOeval on the JSON files"][0]
    print("| evaluator | seconds (median) | x pycocotools | AP |")
    print("|---|---|---|---|")
    for name, (sec, value) in rows.items():
        print(f"| {name} | {sec:.2f} | {ref / sec:.2f}x | {value:.4f} |")


if __name__ == "__main__":
    main()

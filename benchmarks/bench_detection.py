"""Detection and keypoints on this CPU (docs/benchmarks.md "Detection and keypoints").

1. Training throughput per task through the engine (``qualitas.training.run.train``, the
   engine's ThroughputMonitor), all four vision tasks on synthetic shapes at the same input
   size: classification (timm ``tf_efficientnet_lite0`` classifier), segmentation (LRASPP on
   it), detection (FCOS on it) and keypoints (Keypoint R-CNN on it, the light head of
   ``configs/keypoints.yaml``), batch 6, no loader workers.
2. Inference of the trained detectors on the same held-out images: eager PyTorch vs ONNX
   Runtime vs OpenVINO (exported with ``--verify`` through the export pipeline), median ms
   per image at batch 1 (``qualitas predict``'s way: one image at a time) and at batch 8
   (the exported graph's dynamic batch: one call per 8 same-size images).
3. COCO mAP of the detector's predictions on those images: torchmetrics with the
   faster-coco-eval backend (qualitas' ``coco_map``) vs the pycocotools backend, same
   predictions, same figures (checked), median time.

Usage: .venv/bin/python benchmarks/bench_detection.py [--threads 1] [--epochs 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

SIZE = 96


def _config(task: str, data: Path, out: Path, epochs: int) -> dict:
    common = {"batch_size": 6, "num_workers": 0}
    if task == "classification":
        return {
            "task": task,
            "model": {"name": "classifier", "backbone": "tf_efficientnet_lite0", "pretrained": True},
            "data": {"train": str(data / "train"), "val": str(data / "val"), **common,
                     "input_size": {"mode": "resize", "size": [SIZE, SIZE]}},
            "run": {"name": task, "out": str(out)},
            "trainer": {"max_epochs": epochs, "progress_bar": False},
        }  # fmt: skip
    if task == "segmentation":
        return {
            "task": task,
            "model": {"name": "segmenter", "backbone": "tf_efficientnet_lite0", "head": "lraspp", "pretrained": True},
            "data": {"train": str(data / "train"), "val": str(data / "val"), "classes": str(data / "classes.txt"),
                     **common, "input_size": {"mode": "resize", "size": [SIZE, SIZE]}},
            "run": {"name": task, "out": str(out)},
            "trainer": {"max_epochs": epochs, "progress_bar": False},
        }  # fmt: skip
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tasks"))
    from task_helpers import det_config

    cfg = det_config(data, out, keypoints=task == "keypoints", max_epochs=epochs)
    cfg["scheduler"] = {"warmup_epochs": 0.3}
    return cfg


def train_task(task: str, root: Path, out: Path, epochs: int, n: int) -> dict:
    from qualitas.data.synth.shapes import write_classification, write_detection, write_segmentation
    from qualitas.training.config import config_from_dict
    from qualitas.training.run import train

    data = root / task
    counts = {"train": n, "val": 24, "test": 48}
    if task == "classification":
        write_classification(data, counts, size=SIZE)
    elif task == "segmentation":
        write_segmentation(data, counts, size=SIZE)
    else:
        write_detection(data, counts, size=SIZE, keypoints=task == "keypoints")
    t0 = time.perf_counter()
    res = train(config_from_dict(_config(task, data, out, epochs)), out=out / task)
    tp = res.metrics["throughput"]
    return {
        "task": task,
        "samples_per_s": tp.get("samples_per_s"),
        "data_wait": tp.get("data_wait"),
        "wall_s": time.perf_counter() - t0,
        "test": {k: v for k, v in (res.metrics.get("test") or {}).items() if isinstance(v, float)},
        "run_dir": res.run_dir,
        "data": data,
    }


def _median_ms(fn, items, reps: int) -> float:
    for x in items[:2]:
        fn(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        for x in items:
            fn(x)
        times.append((time.perf_counter() - t) / len(items))
    return statistics.median(times) * 1000


def bench_inference(run_dir: Path, data: Path, out: Path, reps: int) -> dict:
    from qualitas.export.pipeline import export_model
    from qualitas.io.image import read_image
    from qualitas.runtime.detection import load_detection_model

    images = [read_image(p).data for p in sorted((data / "images" / "test").glob("*.png"))[:16]]
    models = {"eager": load_detection_model(run_dir)}
    parity = {}
    for fmt in ("onnx", "openvino"):
        res = export_model(run_dir, fmt, out / fmt, verify=True, fail_on_mismatch=False)
        parity[fmt] = res.parity.ok
        models[fmt] = load_detection_model(out / fmt)
    row: dict = {"images": len(images), "parity_ok": parity}
    batches = [torch.stack(images[i : i + 8]).float() for i in range(0, len(images) - 7, 8)]
    for name, m in models.items():
        row[name] = _median_ms(m.detect, images, reps)
        one_image = name != "eager" and not m.card.input.dynamic_batch  # OpenVINO keypoints
        row[f"{name}_batch8"] = float("nan") if one_image else _median_ms(m.runner, batches, reps) / 8
    return row


def bench_map(run_dir: Path, data: Path, reps: int) -> dict:
    """coco_map on the detector's test-split predictions: faster-coco-eval vs pycocotools."""
    from qualitas.data.detection import read_coco
    from qualitas.evaluation.detection import coco_map, to_detections
    from qualitas.models.detection import load_detector

    gt = read_coco(data / "annotations" / "instances_test.json")
    model, spec, _ = load_detector(run_dir)
    preds = []
    from qualitas.io.image import read_image

    with torch.no_grad():
        for im in gt.images:
            (o,) = model([read_image(data / "images" / "test" / im.file).data])
            preds.append(to_detections(o, sorted(gt.categories)))
    out: dict = {"images": len(gt.images), "detections": sum(len(p) for p in preds)}
    for backend in ("faster_coco_eval", "pycocotools"):
        times, fig = [], {}
        for _ in range(reps):
            t = time.perf_counter()
            fig = coco_map(gt, preds, backend=backend)
            times.append(time.perf_counter() - t)
        out[backend] = {"ms": statistics.median(times) * 1000, "map": fig["map"], "map_50": fig["map_50"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train", type=int, default=180, help="training images per task")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "size": SIZE, "tasks": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for task in ("classification", "segmentation", "detection", "keypoints"):
            tr = train_task(task, root / "data", root / "runs", args.epochs, args.train)
            run_dir, data = tr.pop("run_dir"), tr.pop("data")
            print(f"{task}: train {tr['samples_per_s']:.1f} samples/s ({tr['wall_s']:.0f} s)", flush=True)
            if task in ("detection", "keypoints"):
                inf = bench_inference(run_dir, data, root / "export" / task, args.reps)
                tr["inference_ms_per_image"] = inf
                print(
                    f"  inference ({inf['images']} images, ms/img): eager {inf['eager']:.1f}, onnxruntime "
                    f"{inf['onnx']:.1f} ({inf['eager'] / inf['onnx']:.2f}x), openvino {inf['openvino']:.1f} "
                    f"({inf['eager'] / inf['openvino']:.2f}x); parity {inf['parity_ok']}",
                    flush=True,
                )
                e8, o8, v8 = (inf[f"{k}_batch8"] for k in ("eager", "onnx", "openvino"))
                print(
                    f"  batch 8 (ms/img): eager {e8:.1f}, onnxruntime {o8:.1f} ({e8 / o8:.2f}x), "
                    f"openvino {v8:.1f} ({e8 / v8:.2f}x)",
                    flush=True,
                )
                print(f"  test {tr['test']}", flush=True)
            if task == "detection":
                m = bench_map(run_dir, data, args.reps)
                tr["coco_map_time"] = m
                f, p = m["faster_coco_eval"], m["pycocotools"]
                print(
                    f"  coco_map on {m['images']} images / {m['detections']} detections: faster-coco-eval "
                    f"{f['ms']:.1f} ms, pycocotools {p['ms']:.1f} ms ({p['ms'] / f['ms']:.2f}x); "
                    f"mAP {f['map']:.4f} vs {p['map']:.4f}",
                    flush=True,
                )
            results["tasks"].append(tr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()

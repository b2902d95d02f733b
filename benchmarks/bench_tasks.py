"""Classification and segmentation on this CPU (docs/benchmarks.md "Vision tasks").

1. Training throughput per task through the engine (``qualitas.training.run.train``):
   samples/s and the share of each step spent waiting for data, from the engine's own
   ThroughputMonitor; the example configs' models (timm ``tf_efficientnet_lite0`` classifier,
   LRASPP segmenter on it), synthetic shapes at 64 px, 2 loader workers.
2. Inference: eager PyTorch vs ONNX Runtime vs OpenVINO on the exported models (exported
   with ``--dynamic --verify`` through the export pipeline), batch 1 and 8, median of
   repeated calls.

Usage: .venv/bin/python benchmarks/bench_tasks.py [--threads 1] [--epochs 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def train_task(task: str, root: Path, out: Path, epochs: int, size: int) -> dict:
    from qualitas.data.synth.shapes import write_classification, write_segmentation
    from qualitas.training.config import config_from_dict
    from qualitas.training.run import train

    data = root / task
    common = {"batch_size": 16, "num_workers": 2, "input_size": {"mode": "resize", "size": [size, size]}}
    if task == "classification":
        write_classification(data, {"train": 480, "val": 48}, size=size)
        raw = {
            "task": task,
            "model": {"name": "classifier", "backbone": "tf_efficientnet_lite0"},
            "data": {"train": str(data / "train"), "val": str(data / "val"), **common},
        }
    else:
        write_segmentation(data, {"train": 480, "val": 48}, size=size)
        raw = {
            "task": task,
            "model": {"name": "segmenter", "backbone": "tf_efficientnet_lite0", "head": "lraspp"},
            "data": {
                "train": str(data / "train"),
                "val": str(data / "val"),
                "classes": str(data / "classes.txt"),
                **common,
            },
        }
    raw["run"] = {"name": task, "out": str(out)}
    raw["trainer"] = {"max_epochs": epochs, "progress_bar": False}
    t0 = time.perf_counter()
    res = train(config_from_dict(raw), out=out / task)
    tp = res.metrics["throughput"]
    return {
        "task": task,
        "samples_per_s": tp.get("samples_per_s"),
        "data_wait": tp.get("data_wait"),
        "wall_s": time.perf_counter() - t0,
        "run_dir": res.run_dir,
    }


def bench_inference(run_dir: Path, out: Path, size: int, reps: int) -> list[dict]:
    from qualitas.export.formats import FORMATS
    from qualitas.export.pipeline import export_model
    from qualitas.training.run import load_trained

    model, _ = load_trained(run_dir)
    runners = {"eager": lambda x: model(x)}
    for fmt in ("onnx", "openvino"):
        res = export_model(run_dir, fmt, out / fmt, verify=True, dynamic=True)
        runners[fmt] = FORMATS.get(fmt).load(res.path, res.card, "cpu")
    rows = []
    for batch in (1, 8):
        x = torch.rand(batch, 3, size, size)
        row = {"batch": batch}
        for name, run in runners.items():
            with torch.no_grad():
                for _ in range(3):
                    run(x)
                times = []
                for _ in range(reps):
                    t = time.perf_counter()
                    run(x)
                    times.append(time.perf_counter() - t)
            row[name] = statistics.median(times) * 1000 / batch  # ms per image
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "size": args.size, "tasks": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for task in ("classification", "segmentation"):
            tr = train_task(task, root / "data", root / "runs", args.epochs, args.size)
            inf = bench_inference(tr.pop("run_dir"), root / "export" / task, args.size, args.reps)
            results["tasks"].append({**tr, "inference_ms_per_image": inf})
            print(
                f"{task}: train {tr['samples_per_s']:.1f} samples/s, data wait {tr['data_wait']:.1%}",
                flush=True,
            )
            for r in inf:
                print(
                    f"  batch {r['batch']}: eager {r['eager']:.2f} ms/img, onnxruntime {r['onnx']:.2f} "
                    f"({r['eager'] / r['onnx']:.2f}x), openvino {r['openvino']:.2f} ({r['eager'] / r['openvino']:.2f}x)",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""TensorFlow SavedModel vs ONNX Runtime for every model kind qualitas trains: the shipped
default ``nr-image`` quality model, an image classifier, a segmenter, the importance
predictor as a segmentation config (``configs/importance_seg.yaml``) and the grid importance
predictor (``configs/importance_faces.yaml``): onnx2tf conversion time, inference images/s
at batch 1 and 8, and TF-vs-ORT and TF-vs-PyTorch parity on the card's verification inputs
(random tensors and scikit-image photos).

``nr-image``: the SavedModel is converted from the shipped ``model.onnx`` by
``qualitas.export.saved_model.convert_onnx_file`` (what ``qualitas export --format
saved_model`` runs after its ONNX export). The others are built as their example configs
build them (random init: the timing and the conversion do not depend on the weights; the
MTCNN P-Net keeps its shipped weights) and exported with ``export_model(..., "onnx")`` and
``export_model(..., "saved_model", verify=True)`` (parity vs PyTorch recorded in the card).
Three runtimes, measured round-robin (best of ``--rounds`` blocks), the same thread count:

- ``onnxruntime``: ``qualitas.export.onnx.OnnxRunner`` (in this process);
- ``tensorflow (in-process)``: TensorFlow's own throughput on the SavedModel inside the TF
  environment (``tf_worker.py time``; no pipe) — the runtime comparison;
- ``tensorflow (qualitas runner)``: ``SavedModelRunner``, i.e. what ``qualitas score
  --model EXPORT`` pays, pipe and (de)serialisation included.

    .venv/bin/python benchmarks/bench_saved_model.py [--rounds 3] [--seconds 2] [--threads 1] \
        [--models nr-image,classifier,segmenter,importance_seg,importance]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qualitas.export.card import ModelCard, read_card
from qualitas.export.common import example_inputs
from qualitas.export.onnx import OnnxRunner
from qualitas.export.pipeline import Source, export_model
from qualitas.export.saved_model import WORKER, SavedModelRunner, _env, convert_onnx_file, tf_python
from qualitas.export.verify import check_parity, verification_cases
from qualitas.runtime.defaults import weights_dir


def timed(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after one warm-up call)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def tf_in_process(saved_model: Path, x: torch.Tensor, name: str, seconds: float, tmp: Path) -> float:
    npz = tmp / f"x{x.shape[0]}.npz"
    buf = io.BytesIO()
    np.savez(buf, **{name: x.numpy()})
    npz.write_bytes(buf.getvalue())
    cmd = [tf_python(), str(WORKER), "time", str(saved_model), str(npz), str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("QUALITAS_RESULT "))
    return float(json.loads(line.split(" ", 1)[1])["calls_per_s"])


TASK_MODELS = {
    # name: (build_model name, kwargs, input size policy, fixed --input-size or None)
    "classifier": (
        "classifier",
        {"num_classes": 10, "backbone": "tf_efficientnet_lite0", "pretrained": False},
        {"mode": "resize", "size": [224, 224]},
        None,
    ),
    "segmenter": (
        "segmenter",
        {"num_classes": 4, "backbone": "tf_efficientnet_lite0", "head": "lraspp", "pretrained": False},
        {"mode": "resize", "size": [256, 256]},
        None,
    ),
    "importance_seg": (  # configs/importance_seg.yaml
        "segmenter",
        {"num_classes": 10, "backbone": "tf_efficientnet_lite0", "head": "lraspp", "pretrained": False},
        {"mode": "resize", "size": [144, 256]},
        None,
    ),
    "importance": (  # configs/importance_faces.yaml: whole frames; served at 144x256 here
        "importance",
        {"backbone": "mtcnn_pnet", "block": 16, "num_classes": 0, "hidden": 64},
        {"mode": "none"},
        (144, 256),
    ),
}


def task_source(name: str) -> tuple[Source, tuple[int, int] | None]:
    from qualitas.models import build_model

    arch, kwargs, size, fixed = TASK_MODELS[name]
    torch.manual_seed(0)
    model = build_model(arch, **kwargs).eval()
    spec = model.spec.to_dict()
    info = {
        "spec": spec,
        "model": {"name": arch, "kwargs": dict(model.spec.build_kwargs)},
        "input_size": size,
    }
    return Source(model, ModelCard.from_training(spec, info, name=name)), fixed


def measure(name: str, card: ModelCard, onnx_file: Path, saved: Path, tmp: Path, args) -> list[dict]:
    """TF-vs-ORT parity, then images/s of the three runtimes at batch 1 and 8."""
    ort = OnnxRunner(onnx_file, card)
    tfr = SavedModelRunner(saved, card)
    cases, _ = verification_cases(card)
    parity = check_parity(ort, tfr, cases, tolerance=1e-4)
    print(parity.summary(), file=sys.stderr)
    rows = [{"model": name, "parity_tf_vs_ort": {c["name"]: c["max_abs_diff"] for c in parity.cases}}]
    print(json.dumps(rows[-1]), flush=True)
    input_name = card.input.names[0]
    for batch in (1, 8):
        x = example_inputs(card, batch, seed=batch)[0]
        best = {"onnxruntime": 0.0, "tensorflow (in-process)": 0.0, "tensorflow (qualitas runner)": 0.0}
        for _ in range(args.rounds):
            best["onnxruntime"] = max(best["onnxruntime"], timed(lambda x=x: ort(x), args.seconds))
            best["tensorflow (in-process)"] = max(
                best["tensorflow (in-process)"], tf_in_process(saved, x, input_name, args.seconds, tmp)
            )
            best["tensorflow (qualitas runner)"] = max(
                best["tensorflow (qualitas runner)"], timed(lambda x=x: tfr(x), args.seconds)
            )
        for runtime, calls in best.items():
            rows.append(
                {"model": name, "batch": batch, "runtime": runtime, "images_per_s": round(calls * batch, 2),
                 "x_onnxruntime": round(calls / best["onnxruntime"], 2)}
            )  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    tfr.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime and TensorFlow intra-op threads")
    ap.add_argument("--models", default="nr-image," + ",".join(TASK_MODELS), help="comma-separated")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads, "models": {}, "rows": []}
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-sm-") as tmp_s:
            tmp = Path(tmp_s)
            t0 = time.perf_counter()
            if name == "nr-image":
                folder = weights_dir() / "nr-image"
                card = read_card(folder)
                onnx_file = folder / str(card.file)
                report = convert_onnx_file(onnx_file, list(card.input.names), card.output.name, tmp)
                info = {"tensorflow": report["tensorflow_version"], "onnx2tf": report["onnx2tf_version"]}
            else:
                src, fixed = task_source(name)
                onnx_res = export_model(src, "onnx", tmp / "onnx", input_size=fixed)
                t0 = time.perf_counter()
                sm = export_model(
                    src, "saved_model", tmp, verify=True, input_size=fixed, fail_on_mismatch=False
                )
                card, onnx_file = onnx_res.card, onnx_res.path
                info = {
                    "tensorflow": sm.card.export["tensorflow_version"],
                    "onnx2tf": sm.card.export["onnx2tf_version"],
                    "parity_tf_vs_pytorch": sm.parity.max_abs_diff if sm.parity else None,
                }
            # nr-image: onnx2tf only; the others: ONNX export + onnx2tf + --verify in TensorFlow.
            info["convert_s" if name == "nr-image" else "export_verify_s"] = round(
                time.perf_counter() - t0, 1
            )
            info["input"] = list(example_inputs(card, 1)[0].shape)
            out["models"][name] = info
            print(json.dumps({"model": name, **info}), flush=True)
            out["rows"] += measure(name, card, onnx_file, tmp / "saved_model", tmp, args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""TensorFlow SavedModel vs ONNX Runtime for the shipped default ``nr-image`` model:
onnx2tf conversion time, inference images/s at batch 1 and 8, and TF-vs-ORT parity on the
card's verification inputs (random tensors and scikit-image photos).

The SavedModel is converted from the shipped ``model.onnx`` by
``qualitas.export.saved_model.convert_onnx_file`` (what ``qualitas export --format
saved_model`` runs after its ONNX export) in the TensorFlow environment (``make tf-env``).
Three runtimes, measured round-robin (best of ``--rounds`` blocks), the same thread count:

- ``onnxruntime``: ``qualitas.export.onnx.OnnxRunner`` (in this process);
- ``tensorflow (in-process)``: TensorFlow's own throughput on the SavedModel inside the TF
  environment (``tf_worker.py time``; no pipe) — the runtime comparison;
- ``tensorflow (qualitas runner)``: ``SavedModelRunner``, i.e. what ``qualitas score
  --model EXPORT`` pays, pipe and (de)serialisation included.

    .venv/bin/python benchmarks/bench_saved_model.py [--rounds 3] [--seconds 2] [--threads 1]
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

from qualitas.export.card import read_card
from qualitas.export.common import example_inputs
from qualitas.export.onnx import OnnxRunner
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime and TensorFlow intra-op threads")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = weights_dir() / "nr-image"
    card = read_card(folder)
    onnx_file = folder / str(card.file)
    name = card.input.names[0]
    out: dict = {
        "model": "nr-image",
        "threads": args.threads,
        "input": list(example_inputs(card, 1)[0].shape),
    }
    with tempfile.TemporaryDirectory(prefix="bench-sm-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        report = convert_onnx_file(onnx_file, list(card.input.names), card.output.name, tmp)
        out["convert_s"] = round(time.perf_counter() - t0, 1)
        out["tensorflow"], out["onnx2tf"] = report["tensorflow_version"], report["onnx2tf_version"]
        print(f"conversion {out['convert_s']} s ({report['signature']})", file=sys.stderr)
        saved = tmp / "saved_model"
        ort = OnnxRunner(onnx_file, card)
        tfr = SavedModelRunner(saved, card)
        cases, _ = verification_cases(card)
        parity = check_parity(ort, tfr, cases, tolerance=1e-4)
        out["parity_tf_vs_ort"] = {c["name"]: c["max_abs_diff"] for c in parity.cases}
        print(parity.summary(), file=sys.stderr)
        rows = []
        for batch in (1, 8):
            x = example_inputs(card, batch, seed=batch)[0]
            best = {"onnxruntime": 0.0, "tensorflow (in-process)": 0.0, "tensorflow (qualitas runner)": 0.0}
            for _ in range(args.rounds):
                best["onnxruntime"] = max(best["onnxruntime"], timed(lambda x=x: ort(x), args.seconds))
                best["tensorflow (in-process)"] = max(
                    best["tensorflow (in-process)"], tf_in_process(saved, x, name, args.seconds, tmp)
                )
                best["tensorflow (qualitas runner)"] = max(
                    best["tensorflow (qualitas runner)"], timed(lambda x=x: tfr(x), args.seconds)
                )
            for runtime, calls in best.items():
                rows.append(
                    {"batch": batch, "runtime": runtime, "images_per_s": round(calls * batch, 2),
                     "x_onnxruntime": round(calls / best["onnxruntime"], 2)}
                )  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
        tfr.close()
    out["rows"] = rows
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

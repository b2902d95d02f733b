"""No-reference classical metrics (niqe, brisque, piqe): qualitas vs pyiqa, side by side.

Measures in ONE run, interleaved round by round, best of ``--repeat`` (other load on the
machine affects both alike):

* seconds per 1080p image (batch 1) and frames/s on a 1080p clip (``--frames`` frames
  of a pan over a real photo, decoded beforehand, batches of ``--batch``), on cpu (and
  cuda when present), for qualitas and for the same metric in pyiqa;
* the scores of both on the first frame (pyiqa is a cross-check, not the reference:
  the reference is the official MATLAB code, see tests/metrics/test_nr_metrics.py).

pyiqa is installed in its own throw-away venv (``--pyiqa-venv``, created on first use with
``pip install -c constraints.txt pyiqa``); it downloads its NIQE/BRISQUE parameters at run
time, which is not possible here, so its cache is seeded with the same LIVE parameters
qualitas ships (``mu_prisparam``/``cov_prisparam``; the BRISQUE ``allmodel`` vectors).

    .venv/bin/python benchmarks/bench_nr_metrics.py [--frames 8] [--batch 4] [--repeat 3] [--threads 1]

One torch thread by default: on a shared machine, idle OpenMP threads spinning inflate both
wall and CPU time unevenly; the CPU time per image then is the work itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qualitas.metrics import get_metric
from qualitas.metrics.brisque import svr_model
from qualitas.metrics.niqe import pristine_params

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("QUALITAS_MEDIA", ROOT.parent / "shared" / "media"))
PHOTO = MEDIA / "images" / "opencv_aloeL.jpg"
METRICS = ("niqe", "brisque", "piqe")

_PYIQA_WORKER = r"""
import json, sys, time
import numpy as np, torch, pyiqa
frames = torch.from_numpy(np.load(sys.argv[1])).permute(0, 3, 1, 2).float() / 255
batch, device = int(sys.argv[2]), sys.argv[3]
if int(sys.argv[4]) > 0:
    torch.set_num_threads(int(sys.argv[4]))
out = {}
for name in ("niqe", "brisque", "piqe"):
    m = pyiqa.create_metric(name, device=device)
    with torch.no_grad():
        first = m(frames[:1].to(device))  # warm-up, also the score reported
        if device == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        m(frames[:1].to(device))
        if device == "cuda":
            torch.cuda.synchronize()
        t1, c1 = time.perf_counter(), time.process_time()
        for i in range(0, len(frames), batch):
            m(frames[i : i + batch].to(device))
        if device == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
    out[name] = {"score": float(first.flatten()[0]), "s_per_image": t1 - t0, "cpu_per_image": c1 - c0,
                 "fps": len(frames) / (t2 - t1)}
print(json.dumps(out))
"""


def ensure_pyiqa(venv: Path) -> Path:
    """Python of a venv with pyiqa, created on first use; its cache seeded with the LIVE params."""
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), "pyiqa"], check=True
        )
    cache = Path(torch.hub.get_dir()) / "pyiqa"
    cache.mkdir(parents=True, exist_ok=True)
    import scipy.io

    mu, cov = pristine_params()
    scipy.io.savemat(cache / "niqe_modelparameters.mat", {"mu_prisparam": mu[None, :], "cov_prisparam": cov})
    model = svr_model()
    torch.save(
        (torch.from_numpy(model.dual_coef), torch.from_numpy(model.support_vectors)),
        cache / "brisque_svm_weights.pth",
    )
    return py


def make_frames(n: int, width: int = 1920, height: int = 1080) -> np.ndarray:
    """(n, H, W, 3) uint8: a pan + zoom over PHOTO."""
    from PIL import Image

    img = Image.open(PHOTO).convert("RGB")
    iw, ih = img.size
    frames = []
    for i in range(n):
        t = i / max(1, n - 1)
        cw = iw * (0.9 - 0.2 * t)
        ch = cw * height / width
        x0, y0 = (iw - cw) * t, (ih - ch) * 0.5
        frames.append(np.asarray(img.resize((width, height), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))))
    return np.stack(frames)


def time_qualitas(frames: torch.Tensor, batch: int, device: str) -> dict:
    out = {}
    for name in METRICS:
        m = get_metric(name, device)

        def sync() -> None:
            if device == "cuda":
                torch.cuda.synchronize()

        first = m(frames[:1].to(device))
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        m(frames[:1].to(device))
        sync()
        t1, c1 = time.perf_counter(), time.process_time()
        for i in range(0, len(frames), batch):
            m(frames[i : i + batch].to(device))
        sync()
        t2 = time.perf_counter()
        out[name] = {
            "score": float(first[0]),
            "s_per_image": t1 - t0,
            "cpu_per_image": c1 - c0,
            "fps": len(frames) / (t2 - t1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads in both libraries (0: torch default)"
    )
    parser.add_argument("--pyiqa-venv", type=Path, default=Path(tempfile.gettempdir()) / "pyiqa-venv")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    py = ensure_pyiqa(args.pyiqa_venv)
    frames_np = make_frames(args.frames)
    npy = Path(tempfile.mkdtemp(prefix="qualitas-nr-bench-")) / "frames.npy"
    np.save(npy, frames_np)
    frames = torch.from_numpy(frames_np).permute(0, 3, 1, 2).float() / 255
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    best: dict[tuple[str, str, str], dict] = {}
    for _ in range(args.repeat):
        for device in devices:
            runs = {
                "qualitas": time_qualitas(frames, args.batch, device),
                "pyiqa": json.loads(
                    subprocess.run(
                        [str(py), "-c", _PYIQA_WORKER, str(npy), str(args.batch), device, str(args.threads)],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                ),
            }
            for lib, res in runs.items():
                for name, r in res.items():
                    key = (lib, name, device)
                    prev = best.get(key)
                    best[key] = {
                        "score": r["score"],
                        "s_per_image": min(r["s_per_image"], prev["s_per_image"])
                        if prev
                        else r["s_per_image"],
                        "cpu_per_image": min(r["cpu_per_image"], prev["cpu_per_image"])
                        if prev
                        else r["cpu_per_image"],
                        "fps": max(r["fps"], prev["fps"]) if prev else r["fps"],
                    }

    print(f"\n1080p, {args.frames} frames, batch {args.batch}, best of {args.repeat}, torch threads "
          f"{torch.get_num_threads()}, cpu cores {os.cpu_count()}")  # fmt: skip
    print("s/image: wall time, batch 1; cpu s/image: process CPU time (all threads), batch 1; frames/s: wall")
    head = f"{'metric':8s} {'device':6s} {'lib':9s} {'s/image':>8s} {'cpu s/image':>11s} {'frames/s':>9s}"
    print(f"{head} {'score(frame 0)':>15s}")
    for device in devices:
        for name in METRICS:
            for lib in ("qualitas", "pyiqa"):
                r = best[(lib, name, device)]
                print(
                    f"{name:8s} {device:6s} {lib:9s} {r['s_per_image']:8.3f} {r['cpu_per_image']:11.3f} "
                    f"{r['fps']:9.2f} {r['score']:15.4f}"
                )
            q, p = best[("qualitas", name, device)], best[("pyiqa", name, device)]
            print(
                f"{'':8s} {'':6s} {'speed-up':9s} {p['s_per_image'] / q['s_per_image']:7.2f}x "
                f"{p['cpu_per_image'] / q['cpu_per_image']:10.2f}x {q['fps'] / p['fps']:8.2f}x"
            )


if __name__ == "__main__":
    main()

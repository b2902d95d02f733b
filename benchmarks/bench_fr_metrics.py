"""Full-reference metric library (vif, vifp, gmsd, fsim, fsimc, vsi, mad, nlpd, cw_ssim,
ciede2000): qualitas vs pyiqa at 1080p, side by side in one run.

For every entry of ``ENTRIES`` (qualitas name, pyiqa name and options) it measures,
interleaved metric by metric and round by round, best of ``--repeat`` (other load on the
machine affects both alike):

* seconds per 1080p image pair (batch 1) and frames/s over a 1080p clip (``--frames``
  frames of a pan over a real photo, distorted copy JPEG q=25, decoded beforehand,
  batches of ``--batch``), on cpu (and cuda when present);
* both libraries' score on the first pair (a cross-check only: the reference is the
  official MATLAB code, see tests/metrics/test_fr_reference.py; pyiqa deviates on
  purpose for some metrics, see docs/metrics.md).

pyiqa runs in its own throw-away venv (``--pyiqa-venv``, created on first use with
``pip install -c constraints.txt pyiqa``), one subprocess per metric and round, with a
time limit (``--pyiqa-timeout``) so that one slow or failing metric does not stop the rest.
The classical metrics benchmarked here need no downloaded weights.

    .venv/bin/python benchmarks/bench_fr_metrics.py [--frames 4] [--batch 2] [--repeat 2] [--threads 1]

On a shared, oversubscribed machine use ``--threads 1``: multi-threaded torch ops then
wait on descheduled worker threads and both libraries' timings mostly measure that.
"""

from __future__ import annotations

import argparse
import io
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

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("QUALITAS_MEDIA", ROOT.parent / "shared" / "media"))
PHOTO = MEDIA / "images" / "opencv_aloeL.jpg"

# (qualitas name, pyiqa metric name or None, pyiqa create_metric options)
ENTRIES: list[tuple[str, str | None, dict]] = [
    ("vif", "vif", {}),  # both the wavelet-domain vifvec.m
    ("vifp", None, {}),  # pixel-domain vifp_mscale.m: not in pyiqa (piq: vif_p)
    ("gmsd", "gmsd", {}),
    ("fsim", "fsim", {"chromatic": False}),
    ("fsimc", "fsim", {}),
    ("vsi", "vsi", {}),
    ("mad", "mad", {}),
    ("nlpd", "nlpd", {}),
    ("cw_ssim", "cw_ssim", {}),
    ("ciede2000", None, {}),
]

_PYIQA_WORKER = r"""
import json, sys, time
import numpy as np, torch, pyiqa
data = np.load(sys.argv[1])
dist = torch.from_numpy(data["dist"]).permute(0, 3, 1, 2).float() / 255
ref = torch.from_numpy(data["ref"]).permute(0, 3, 1, 2).float() / 255
name, opts, batch, device = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if int(sys.argv[6]) > 0:
    torch.set_num_threads(int(sys.argv[6]))
m = pyiqa.create_metric(name, device=device, **opts)
def sync():
    if device == "cuda":
        torch.cuda.synchronize()
with torch.no_grad():
    first = m(dist[:1].to(device), ref[:1].to(device))  # warm-up, also the score reported
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    m(dist[:1].to(device), ref[:1].to(device))
    sync()
    t1, c1 = time.perf_counter(), time.process_time()
    for i in range(0, len(dist), batch):
        m(dist[i : i + batch].to(device), ref[i : i + batch].to(device))
    sync()
    t2 = time.perf_counter()
print(json.dumps({"score": float(first.flatten()[0]), "s_per_image": t1 - t0, "cpu_per_image": c1 - c0,
                  "fps": len(dist) / (t2 - t1)}))
"""


def ensure_pyiqa(venv: Path) -> Path:
    """Python of a throw-away venv with pyiqa, created on first use."""
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), "pyiqa"], check=True
        )
    return py


def make_pairs(n: int, width: int = 1920, height: int = 1080) -> tuple[np.ndarray, np.ndarray]:
    """(dist, ref), each (n, H, W, 3) uint8: a pan + zoom over PHOTO and its JPEG q=25 copy."""
    from PIL import Image

    img = Image.open(PHOTO).convert("RGB")
    iw, ih = img.size
    refs, dists = [], []
    for i in range(n):
        t = i / max(1, n - 1)
        cw = iw * (0.9 - 0.2 * t)
        ch = cw * height / width
        x0, y0 = (iw - cw) * t, (ih - ch) * 0.5
        frame = img.resize((width, height), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
        buf = io.BytesIO()
        frame.save(buf, format="JPEG", quality=25)
        refs.append(np.asarray(frame))
        dists.append(np.asarray(Image.open(buf).convert("RGB")))
    return np.stack(dists), np.stack(refs)


def time_qualitas(name: str, dist: torch.Tensor, ref: torch.Tensor, batch: int, device: str) -> dict:
    m = get_metric(name, device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    first = m(dist[:1], ref[:1])
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    m(dist[:1], ref[:1])
    sync()
    t1, c1 = time.perf_counter(), time.process_time()
    for i in range(0, len(dist), batch):
        m(dist[i : i + batch], ref[i : i + batch])
    sync()
    t2 = time.perf_counter()
    return {
        "score": float(first[0]),
        "s_per_image": t1 - t0,
        "cpu_per_image": c1 - c0,
        "fps": len(dist) / (t2 - t1),
    }


def time_pyiqa(
    py: Path, npz: Path, name: str, opts: dict, batch: int, device: str, timeout: float, threads: int
) -> dict:
    cmd = [str(py), "-c", _PYIQA_WORKER, str(npz), name, json.dumps(opts), str(batch), device, str(threads)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {res.returncode}: {last[:60]}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _merge(prev: dict | None, r: dict) -> dict:
    if prev is None or "error" in prev:
        return r
    if "error" in r:
        return prev
    return {
        "score": r["score"],
        "s_per_image": min(r["s_per_image"], prev["s_per_image"]),
        "cpu_per_image": min(r["cpu_per_image"], prev["cpu_per_image"]),
        "fps": max(r["fps"], prev["fps"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="qualitas metric names to run (default: all)")
    parser.add_argument("--pyiqa-venv", type=Path, default=Path(tempfile.gettempdir()) / "pyiqa-venv")
    parser.add_argument("--pyiqa-timeout", type=float, default=900.0, help="seconds per pyiqa metric run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads for both libraries (0: torch default)"
    )
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    py = ensure_pyiqa(args.pyiqa_venv)
    dist_np, ref_np = make_pairs(args.frames)
    npz = Path(tempfile.mkdtemp(prefix="qualitas-fr-bench-")) / "pairs.npz"
    np.savez(npz, dist=dist_np, ref=ref_np)
    dist = torch.from_numpy(dist_np).permute(0, 3, 1, 2).float() / 255
    ref = torch.from_numpy(ref_np).permute(0, 3, 1, 2).float() / 255
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    entries = [e for e in ENTRIES if not args.only or e[0] in args.only]

    best: dict[tuple[str, str, str], dict] = {}
    for _ in range(args.repeat):
        for device in devices:
            for name, pyiqa_name, opts in entries:
                best[("qualitas", name, device)] = _merge(
                    best.get(("qualitas", name, device)), time_qualitas(name, dist, ref, args.batch, device)
                )
                if pyiqa_name is not None:
                    r = time_pyiqa(
                        py, npz, pyiqa_name, opts, args.batch, device, args.pyiqa_timeout, args.threads
                    )
                    best[("pyiqa", name, device)] = _merge(best.get(("pyiqa", name, device)), r)
                print(f"done: {name} {device}", file=sys.stderr, flush=True)

    print(
        f"\n1080p pairs, {args.frames} frames, batch {args.batch}, best of {args.repeat}, torch threads "
        f"{torch.get_num_threads()}, cpu cores {os.cpu_count()}"
    )
    print("s/image: wall time, batch 1; cpu s/image: process CPU time (all threads); frames/s: wall, batched")
    head = "| metric | device | lib | s/image | cpu s/image | frames/s | score (pair 0) | speed-up s/image |"
    print(head)
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for device in devices:
        for name, pyiqa_name, opts in entries:
            q = best[("qualitas", name, device)]
            p = best.get(("pyiqa", name, device))
            label = f"pyiqa `{pyiqa_name}`" + (f" {opts}" if opts else "")
            up = "" if p is None or "error" in p else f"{p['s_per_image'] / q['s_per_image']:.2f}x"
            print(
                f"| {name} | {device} | qualitas | {q['s_per_image']:.3f} | {q['cpu_per_image']:.3f} | "
                f"{q['fps']:.2f} | {q['score']:.5f} | {up} |"
            )
            if p is None:
                print(f"| {name} | {device} | (not in pyiqa) | | | | | |")
            elif "error" in p:
                print(f"| {name} | {device} | {label} | {p['error']} | | | | |")
            else:
                print(
                    f"| {name} | {device} | {label} | {p['s_per_image']:.3f} | {p['cpu_per_image']:.3f} | "
                    f"{p['fps']:.2f} | {p['score']:.5f} | |"
                )
    if args.json:
        args.json.write_text(json.dumps({"|".join(k): v for k, v in best.items()}, indent=1))


if __name__ == "__main__":
    main()

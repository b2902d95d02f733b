"""Benchmark catalog scoring on Ray (``qualitas batch``) against ``qualitas score --jobs``.

Generates a catalog of ``--images`` PNG photos (random crops of scikit-image samples, so no
reserved media) and scores it, on this machine, with:

* ``qualitas score DIR --metric M --jobs 1`` and ``--jobs 2`` (fresh processes);
* :func:`qualitas.runtime.distributed.score_catalog` on a local Ray (``num_cpus=2``) with 1
  and 2 actors (fresh output folder each, Ray already started: the cluster case).

It reports wall seconds and items/s, and separates the fixed start-up cost from the
steady state: for ``qualitas score``, a one-image run gives the fixed cost (process start,
imports); for Ray, the time to the first result (actor start: import torch, build the
metrics). Steady-state ms/item = (wall - fixed) / items; the per-item overhead of Ray is
its steady-state ms/item minus that of ``score --jobs`` with as many workers.

    PYTHONPATH=src python benchmarks/bench_ray.py [--images 200] [--size 384] [--metric brisque]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_catalog(folder: Path, n: int, size: int) -> Path:
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    photos = [data.astronaut(), data.coffee()]
    rng = np.random.default_rng(0)
    for i in range(n):
        img = photos[i % len(photos)]
        y = rng.integers(0, max(1, img.shape[0] - size))
        x = rng.integers(0, max(1, img.shape[1] - size))
        Image.fromarray(np.ascontiguousarray(img[y : y + size, x : x + size, :3])).save(
            folder / f"{i:04d}.png"
        )
    return folder


def time_score(cat: Path, metric: str, jobs: int) -> float:
    argv = [sys.executable, "-m", "qualitas", "score", str(cat), "--metric", metric, "--jobs", str(jobs)]
    argv += ["--out", str(cat.parent / f"score-{jobs}.json"), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(argv, check=False, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--metric", default="brisque")
    ap.add_argument("--block-items", type=int, default=4)
    args = ap.parse_args()
    import ray

    from qualitas.runtime.distributed import RayOptions, score_catalog

    with tempfile.TemporaryDirectory() as tmp:
        cat = make_catalog(Path(tmp) / "cat", args.images, args.size)
        n = args.images
        one = make_catalog(Path(tmp) / "one", 1, args.size)
        fixed = min(time_score(one, args.metric, 1) for _ in range(2))
        rows = []
        steady = {}
        for jobs in (1, 2):
            wall = time_score(cat, args.metric, jobs)
            steady[f"score{jobs}"] = (wall - fixed) / n
            rows.append((f"qualitas score --jobs {jobs}", wall, fixed))
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
        ray_start = time.perf_counter() - t0
        try:
            for workers in (1, 2):
                t0 = time.perf_counter()
                summary = score_catalog(
                    [cat],
                    Path(tmp) / f"out-{workers}",
                    metrics=[args.metric],
                    ray_options=RayOptions(workers=workers, block_items=args.block_items),
                )
                wall = time.perf_counter() - t0
                first = summary.first_result_s or 0.0
                steady[f"ray{workers}"] = (wall - first) / max(1, n - 1)
                rows.append((f"Ray, {workers} actor(s)", wall, first))
        finally:
            ray.shutdown()
    print(
        f"{n} images {args.size}x{args.size}, metric {args.metric}, {os.cpu_count()} CPUs; ray.init {ray_start:.1f} s"
    )
    print(f"{'path':<26} {'wall s':>8} {'items/s':>8} {'start s':>8} {'steady items/s':>15}")
    for (name, wall, start), key in zip(rows, ("score1", "score2", "ray1", "ray2")):
        print(f"{name:<26} {wall:8.1f} {n / wall:8.2f} {start:8.1f} {1 / steady[key]:15.2f}")
    for w in (1, 2):
        extra = 1000 * (steady[f"ray{w}"] - steady[f"score{w}"])
        print(f"Ray per-item overhead, {w} actor(s) vs score --jobs {w}: {extra:+.1f} ms/item (steady state)")


if __name__ == "__main__":
    main()

"""Load test of ``qualitas serve`` on loopback: latency, throughput, errors, batching gain.

Starts ``qualitas serve`` in a subprocess for each server setting (dynamic batching with
``--max-batch B`` and batch size 1), then sends ``--requests`` valid PNG uploads at each
client concurrency with httpx (asyncio), all in one run so that other load on the machine
affects every case alike. Bounded: ``--requests`` per case and ``--max-seconds`` per case.

    PYTHONPATH=src python benchmarks/bench_serve.py [--model nr-image] [--requests 1000]
        [--concurrency 8 32] [--max-batch 8] [--size 256]

Reports p50/p95/p99 latency (ms), requests/s and the error count (must be 0: every request
is valid), plus the mean images per model call from the server's /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import time

import numpy as np


def png(size: int, seed: int) -> bytes:
    from PIL import Image
    from skimage import data

    img = data.astronaut()
    y = 10 + seed % 200
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img[y : y + size, y : y + size])).save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, max_batch: int, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    argv = [sys.executable, "-m", "qualitas", "serve", "--model", model, "--port", str(port)]
    argv += ["--max-batch", str(max_batch), "--workers", str(workers), "--queue-size", "256"]
    argv += ["--threads", str(threads), "--max-wait-ms", "5"]
    proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


async def load(url: str, bodies: list[bytes], n: int, concurrency: int, max_seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    stop = time.monotonic() + max_seconds

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            if time.monotonic() > stop:
                return
            t0 = time.perf_counter()
            try:
                r = await c.post(
                    "/score", content=bodies[i % len(bodies)], headers={"Content-Type": "image/png"}
                )
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        await c.post("/score", content=bodies[0], headers={"Content-Type": "image/png"})  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {
        "n": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "p99": float(np.percentile(lat, 99)),
    }


def batch_counts(url: str) -> tuple[float, float]:
    """(images, model calls) so far, from the server's qualitas_batch_images histogram."""
    import httpx

    text = httpx.get(url + "/metrics").text
    val = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("qualitas_batch_images_")
    }
    return val.get("qualitas_batch_images_sum", 0.0), val.get("qualitas_batch_images_count", 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nr-image")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    ap.add_argument("--max-seconds", type=float, default=240)
    args = ap.parse_args()
    bodies = [png(args.size, s) for s in range(16)]
    print(f"model {args.model}, {args.requests} PNG {args.size}x{args.size} per case, {os.cpu_count()} CPUs")
    print(
        f"{'server':<16} {'clients':>7} {'n':>5} {'err':>4} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'img/call':>8}"
    )
    for max_batch in (args.max_batch, 1):
        proc, url = start_server(args.model, max_batch, max(32, max(args.concurrency)), args.threads)
        try:
            for conc in args.concurrency:
                images0, calls0 = batch_counts(url)
                r = asyncio.run(load(url, bodies, args.requests, conc, args.max_seconds))
                images, calls = batch_counts(url)
                # Batch size 1 calls the model directly (no histogram): one image per call.
                mean = (images - images0) / (calls - calls0) if calls > calls0 else 1.0
                name = f"max-batch {max_batch}"
                print(
                    f"{name:<16} {conc:>7} {r['n']:>5} {r['errors']:>4} {r['rps']:>7.1f} {r['p50']:>8.1f} "
                    f"{r['p95']:>8.1f} {r['p99']:>8.1f} {mean:>8.2f}",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()

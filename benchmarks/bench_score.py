"""Benchmark `qualitas score` against ffmpeg's own filters on a 1080p clip (and 4K memory).

Makes a 1080p, 10-second clip from a real photo with camera motion (pan + zoom crops
rendered per frame, libx264 at CRF 10) and an x264 CRF-35 copy of it, then measures in ONE
run, side by side (so that other load on the machine affects all of them alike):

* plain decode of both files with ffmpeg (``-f null``): the upper bound;
* ffmpeg's ``psnr`` + ``ssim`` filters on the pair;
* qualitas psnr + ssim + ms_ssim (engine, in process);
* ffmpeg's ``libvmaf`` filter alone;
* qualitas vmaf (engine, in process; runs the same libvmaf).

Each measurement is repeated ``--repeat`` times, interleaved, and the best is kept.
With ``--memory``, also scores 4K clips of two lengths in fresh processes and reports their
peak RSS (memory must be flat in the clip length).

    .venv/bin/python benchmarks/bench_score.py [--repeat 2] [--memory] [--seconds 10]
        [--breakdown] [--baseline-src /tmp/qualitas-old/src]

Every case reports frames/s (wall) and CPU ms per frame (all threads of the process and
its ffmpeg children): on a shared, loaded machine the CPU figure is the steadier one.
``--baseline-src`` also times, in fresh processes, the engine of another source tree (for
instance ``git archive COMMIT src | tar -x -C /tmp/qualitas-old``) next to this one's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MEDIA = Path(os.environ.get("QUALITAS_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))
PHOTO = "images/opencv_aloeL.jpg"


def render_clip(photo: Path, out: Path, width: int, height: int, n: int, fps: int, crf: int) -> Path:
    """Pan + zoom over ``photo``: each frame is a moving crop resized (bicubic) to WxH."""
    import av
    from PIL import Image

    img = Image.open(photo).convert("RGB")
    iw, ih = img.size
    aspect = width / height
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i in range(n):
            t = i / max(1, n - 1)
            # Zoom from 90% to 60% of the photo width while panning left to right, top to bottom.
            cw = iw * (0.9 - 0.3 * t)
            ch = min(ih * 0.95, cw / aspect)
            cw = ch * aspect
            x0 = (iw - cw) * t
            y0 = (ih - ch) * (0.5 + 0.4 * np.sin(2 * np.pi * t) / 2)
            frame = img.resize((width, height), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def reencode(src: Path, out: Path, crf: int) -> Path:
    """x264 CRF re-encode of ``src`` with the static ffmpeg."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(src),
           "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return out


def make_pair(workdir: Path, width: int, height: int, seconds: float, fps: int = 25) -> tuple[Path, Path]:
    """(reference, CRF-35 distorted) clips, cached in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * fps))
    ref = workdir / f"ref_{width}x{height}_{n}.mp4"
    dist = workdir / f"dist_{width}x{height}_{n}_crf35.mp4"
    if not ref.exists():
        render_clip(MEDIA / PHOTO, ref, width, height, n, fps, crf=10)
    if not dist.exists():
        reencode(ref, dist, 35)
    return ref, dist


def _cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its waited-for children (ffmpeg)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``fn()``; a function may return its own pair instead."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    out = fn()
    if isinstance(out, tuple):
        return out
    return time.perf_counter() - start, _cpu_seconds() - cpu


_ENGINE_SCRIPT = """
import json, resource, sys, time
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t = time.perf_counter()
# Warm up imports (and, with QUALITAS_COMPILE=1, the kernel's compilation) on two frames.
score_pairs([Pair(sys.argv[1], sys.argv[2])], sys.argv[3].split(","), ScoreOptions(max_frames=2))
warm = time.perf_counter() - t
t, c = time.perf_counter(), cpu()
res, _ = score_pairs([Pair(sys.argv[1], sys.argv[2])], sys.argv[3].split(","), ScoreOptions())
assert res[0].error is None, res[0].error
print(json.dumps({"wall": time.perf_counter() - t, "cpu": cpu() - c, "warmup": warm}))
"""


WARMUP: dict[str, float] = {}
"""Longest warm-up (imports, compilation) seen per subprocess case, in seconds."""


def engine_in_subprocess(
    src: Path, dist: str, ref: str, metrics: str, env_extra: dict[str, str] | None = None, label: str = ""
) -> tuple[float, float]:
    """(wall, CPU) seconds of the engine of the qualitas tree ``src`` (its ``src`` folder),
    measured inside a fresh process after a warm-up on two frames (imports, compilation)."""
    env = dict(os.environ, PYTHONPATH=str(src), **(env_extra or {}))
    out = subprocess.run(
        [sys.executable, "-c", _ENGINE_SCRIPT, dist, ref, metrics],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    WARMUP[label] = max(WARMUP.get(label, 0.0), row["warmup"])
    return row["wall"], row["cpu"]


def ffmpeg(args: list[str]) -> None:
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *args]
    subprocess.run(cmd, check=True, capture_output=True)


def bench_speed(
    ref: Path,
    dist: Path,
    n_frames: int,
    repeat: int,
    threads: int,
    breakdown: bool = False,
    baseline_src: Path | None = None,
    compiled: bool = False,
) -> dict[str, tuple[float, float]]:
    """{case: (frames/s, CPU ms per frame)}, best of ``repeat`` interleaved runs each."""
    from qualitas.runtime.score import Pair, ScoreOptions, score_pairs

    d, r = str(dist), str(ref)
    cases = {
        "ffmpeg decode both (-f null)": lambda: ffmpeg(
            ["-i", d, "-i", r, "-map", "0:v", "-map", "1:v", "-f", "null", "-"]
        ),
        "ffmpeg psnr+ssim filters": lambda: ffmpeg(
            [
                "-i",
                d,
                "-i",
                r,
                "-lavfi",
                "[0:v]split[d1][d2];[1:v]split[r1][r2];[d1][r1]psnr;[d2][r2]ssim",
                "-f",
                "null",
                "-",
            ]  # fmt: skip
        ),
        "qualitas psnr+ssim+ms_ssim": lambda: _check(
            score_pairs([Pair(d, r)], ["psnr", "ssim", "ms_ssim"], ScoreOptions())[0]
        ),
        "ffmpeg libvmaf": lambda: ffmpeg(
            ["-i", d, "-i", r, "-lavfi", f"[0:v][1:v]libvmaf=n_threads={threads}", "-f", "null", "-"]
        ),
        "qualitas vmaf": lambda: _check(
            score_pairs([Pair(d, r)], ["vmaf"], ScoreOptions(vmaf_threads=threads))[0]
        ),
    }
    if baseline_src is not None:
        # The same engine from another source tree (e.g. an older commit), and this tree's,
        # both in fresh processes timed after their imports: a before/after in one run.
        here = Path(__file__).resolve().parents[1] / "src"
        cases["qualitas psnr+ssim+ms_ssim (subprocess)"] = lambda: engine_in_subprocess(
            here, d, r, "psnr,ssim,ms_ssim", label="this tree"
        )
        cases["baseline psnr+ssim+ms_ssim (subprocess)"] = lambda: engine_in_subprocess(
            baseline_src, d, r, "psnr,ssim,ms_ssim", label="baseline tree"
        )
    if compiled:
        # The opt-in compiled SSIM kernel, in a fresh process; its compilation happens in the
        # warm-up (reported apart: Inductor's on-disk cache makes later processes faster).
        here = Path(__file__).resolve().parents[1] / "src"
        cases["qualitas psnr+ssim+ms_ssim, QUALITAS_COMPILE=1 (subprocess)"] = lambda: engine_in_subprocess(
            here, d, r, "psnr,ssim,ms_ssim", {"QUALITAS_COMPILE": "1"}, label="QUALITAS_COMPILE=1"
        )
    if breakdown:
        # Where the time goes: decoding + conversion alone (RGB as psnr reads it, and the Y
        # plane as the luma metrics read it), then each metric alone.
        def decode_only(**planes) -> None:
            from qualitas.io.video import iter_batches
            from qualitas.runtime.score import prefetch

            its = [prefetch(iter_batches(p, 4, reuse_buffer=2, **planes)) for p in (d, r)]  # as the engine
            for _ in zip(*its):
                pass

        cases["qualitas decode+RGB both (no metric)"] = decode_only
        cases["qualitas decode+luma both (no metric)"] = lambda: decode_only(rgb=False, luma=True)
        for names in (["psnr"], ["ssim"], ["ms_ssim"], ["ssim", "ms_ssim"]):
            cases[f"qualitas {'+'.join(names)} alone"] = lambda names=names: _check(
                score_pairs([Pair(d, r)], names, ScoreOptions())[0]
            )
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for name, fn in cases.items():
            wall, cpu = timed(fn)
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], wall), min(old[1], cpu))
    return {name: (n_frames / wall, 1000.0 * cpu / n_frames) for name, (wall, cpu) in best.items()}


def _check(results) -> None:
    for res in results:
        if res.error:
            raise SystemExit(f"benchmark pair failed to score: {res.error}")


_RSS_SCRIPT = """
import json, resource, sys
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs
res, _ = score_pairs([Pair(sys.argv[1], sys.argv[2])], sys.argv[3].split(","), ScoreOptions())
assert res[0].error is None, res[0].error
# VmHWM: the peak RSS of this process image. getrusage's ru_maxrss is not used for it: Linux
# carries it over from the forking parent across exec, so it reported the benchmark's own
# peak (1505 MB for every clip) instead of the scoring process's.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"frames": res[0].frames_scored, "self_mb": hwm,
                  "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def bench_memory(workdir: Path, lengths: list[float], metrics: str, src: Path | None = None) -> list[dict]:
    """Peak RSS of fresh processes scoring 4K pairs of each length (``src``: another source tree)."""
    rows = []
    env = dict(os.environ, PYTHONPATH=str(src)) if src is not None else None
    for seconds in lengths:
        ref, dist = make_pair(workdir, 3840, 2160, seconds)
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, str(dist), str(ref), metrics],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row.update(seconds=seconds, wall_s=time.perf_counter() - start)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/qualitas-bench"))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="libvmaf threads (both runs)")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS on 4K clips of two lengths")
    ap.add_argument("--breakdown", action="store_true", help="also time decoding alone and each metric alone")
    ap.add_argument("--memory-seconds", type=float, nargs=2, default=(1.0, 4.0))
    ap.add_argument("--memory-metrics", default="psnr,ssim,ms_ssim")
    ap.add_argument("--memory-only", action="store_true", help="only the 4K peak-memory measurement")
    ap.add_argument(
        "--compile", action="store_true", help="also time the engine with QUALITAS_COMPILE=1 (fresh process)"
    )
    ap.add_argument(
        "--baseline-src", type=Path, help="a qualitas 'src' folder (e.g. from git archive) to compare against"
    )
    args = ap.parse_args()

    if args.memory_only:
        args.memory = True
    else:
        bench_1080p(args)
    if args.memory:
        trees = [("this tree", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
        for label, src in trees:
            for row in bench_memory(args.workdir, list(args.memory_seconds), args.memory_metrics, src):
                print(
                    f"{label}: 4K {row['seconds']:g} s ({row['frames']} frames, {args.memory_metrics}): "
                    f"peak RSS {row['self_mb']:.0f} MB, {row['wall_s']:.1f} s"
                )


def bench_1080p(args: argparse.Namespace) -> None:
    ref, dist = make_pair(args.workdir, 1920, 1080, args.seconds)
    n = int(round(args.seconds * 25))
    print(f"1080p pair: {ref.name} vs {dist.name}, {n} frames, {os.cpu_count()} CPUs")
    speed = bench_speed(
        ref, dist, n, args.repeat, args.threads, args.breakdown, args.baseline_src, args.compile
    )
    fps = {name: v[0] for name, v in speed.items()}
    base = fps["ffmpeg psnr+ssim filters"]
    vmaf_base = fps["ffmpeg libvmaf"]
    print(f"{'case':44s} {'frames/s':>9s} {'CPU ms/frame':>13s}")
    for name, (value, cpu_ms) in speed.items():
        print(f"{name:44s} {value:9.1f} {cpu_ms:13.1f}")
    q = "qualitas psnr+ssim+ms_ssim"
    print(f"ratio {q} / ffmpeg psnr+ssim: {fps[q] / base:.2f}x frames/s, "
          f"{speed['ffmpeg psnr+ssim filters'][1] / speed[q][1]:.2f}x CPU time")  # fmt: skip
    print(f"ratio qualitas vmaf / ffmpeg libvmaf: {fps['qualitas vmaf'] / vmaf_base:.2f}x")
    for label, seconds in WARMUP.items():
        print(f"warm-up, {label} (imports, compilation, 2 frames; longest): {seconds:.1f} s")
    if args.baseline_src is not None:
        new, old = speed[f"{q} (subprocess)"], speed["baseline psnr+ssim+ms_ssim (subprocess)"]
        print(
            f"this tree vs baseline: {new[0] / old[0]:.2f}x frames/s, {old[1] / new[1]:.2f}x less CPU per frame"
        )


if __name__ == "__main__":
    main()

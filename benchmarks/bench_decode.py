"""Decode throughput of ``qualitas.io.iter_frames`` against plain PyAV, side by side.

Usage::

    .venv/bin/python benchmarks/bench_decode.py [VIDEO ...] [--frames N] [--repeats R]

Without arguments it uses ../shared/media/videos/bigbuckbunny.mp4 (1280x720) and a
1920x1080 libx264 upscale of it made with the ffmpeg from imageio-ffmpeg (in a temp dir).
For each file it reports wall-clock frames/s and CPU milliseconds per frame (process
CPU time, FFmpeg's decoder threads included; steadier than wall time on a shared
machine), interleaved in one run so that load hits all modes alike (best of R repeats):

- ``pyav-decode``: PyAV decode only, no pixel conversion (upper bound),
- ``pyav-rgb24+float``: the usual user code, ``frame.to_ndarray("rgb24")`` then a float tensor,
- ``qualitas-swscale``: the swscale fallback path of ``FrameConverter``,
- ``qualitas``: ``iter_frames`` (planar YUV -> float RGB in torch),
- ``qualitas-batches8``: ``iter_batches(batch_size=8)``,
- ``qualitas-batches8-reuse``: the same with ``reuse_buffer=True``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import av
import torch

from qualitas.io import _convert
from qualitas.io.video import iter_batches, iter_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media" / "videos"


def _pyav(path: Path, frames: int, convert: bool) -> int:
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if convert:
                arr = frame.to_ndarray(format="rgb24")
                torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
            n += 1
            if n >= frames:
                break
    return n


def _qualitas(path: Path, frames: int) -> int:
    return sum(1 for _ in iter_frames(path, max_frames=frames))


def _qualitas_swscale(path: Path, frames: int) -> int:
    saved = dict(_convert._PLANAR_YUV)
    _convert._PLANAR_YUV.clear()  # force the swscale fallback for this run
    try:
        return _qualitas(path, frames)
    finally:
        _convert._PLANAR_YUV.update(saved)


def _batches(path: Path, frames: int, reuse: bool = False) -> int:
    return sum(len(b.indices) for b in iter_batches(path, 8, max_frames=frames, reuse_buffer=reuse))


MODES = {
    "pyav-decode": lambda p, n: _pyav(p, n, convert=False),
    "pyav-rgb24+float": lambda p, n: _pyav(p, n, convert=True),
    "qualitas-swscale": _qualitas_swscale,
    "qualitas": _qualitas,
    "qualitas-batches8": _batches,
    "qualitas-batches8-reuse": lambda p, n: _batches(p, n, reuse=True),
}


def _make_1080p(src: Path, dst: Path) -> Path:
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(src), "-vf", "scale=1920:1080"]
    cmd += ["-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=120, help="frames decoded per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        videos = list(args.videos)
        if not videos:
            bbb = SHARED / "bigbuckbunny.mp4"
            videos = [bbb, _make_1080p(bbb, Path(tmp) / "bbb_1080p.mp4")]
        print(f"torch threads: {torch.get_num_threads()}, frames per run: {args.frames}")
        for path in videos:
            best = {m: 0.0 for m in MODES}
            cpu = {m: float("inf") for m in MODES}
            for _ in range(args.repeats):
                for name, fn in MODES.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    n = fn(path, args.frames)
                    best[name] = max(best[name], n / (time.perf_counter() - t0))
                    cpu[name] = min(cpu[name], (time.process_time() - c0) * 1000.0 / n)
            base = best["pyav-rgb24+float"]
            with av.open(str(path)) as c:
                s = c.streams.video[0]
                desc = f"{s.width}x{s.height} {s.codec_context.name} {s.codec_context.pix_fmt}"
            print(f"\n{path.name} ({desc})")
            for name in MODES:
                print(
                    f"  {name:24s} {best[name]:8.1f} fps ({best[name] / base:4.2f}x pyav-rgb24+float)"
                    f"  {cpu[name]:6.2f} CPU ms/frame"
                )


if __name__ == "__main__":
    main()

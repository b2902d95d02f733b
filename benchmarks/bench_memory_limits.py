"""Peak memory of `qualitas score` on a huge image and on a long 4K video (fresh processes).

* a 16384x16384 PNG (268 Mpixel): above Pillow's decompression-bomb limit (2 x 89.5
  Mpixel), so it must be refused with one line before any pixel is decoded;
* a 9000x9000 PNG (81 Mpixel, just under the limit): decoded and scored (psnr against
  itself), to show what the largest accepted image costs;
* 4K (3840x2160) clips of ``--short`` and ``--long`` frames scored with psnr + ssim against
  themselves: memory must not grow with the length.

Each case runs ``python -m qualitas score`` in its own process; the figure is the peak RSS
(``VmHWM`` of the scoring process, read by itself at exit).

    .venv/bin/python benchmarks/bench_memory_limits.py [--short 30] [--long 300]
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

ROOT = Path(__file__).resolve().parents[1]


_CHILD = (
    "import atexit, sys\n"
    "def hwm():\n"
    "    kb = next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]\n"
    "    sys.stderr.write(f'VMHWM_KB {kb}\\n')\n"
    "atexit.register(hwm)\n"
    "from qualitas.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _peak_run(args: list[str]) -> dict:
    """Run ``qualitas score ARGS`` in a fresh process: rc, wall s, peak RSS MB, stderr tail."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, "score", *args, "--format", "json"],
        capture_output=True,
        env=env,
        text=True,
        check=False,
    )
    lines = proc.stderr.strip().splitlines()
    kb = next((int(x.split()[1]) for x in lines if x.startswith("VMHWM_KB")), 0)
    doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    res = (doc.get("results") or [{}])[0]
    return {
        "rc": proc.returncode,
        "wall_s": round(time.monotonic() - t0, 1),
        "peak_rss_mb": round(kb / 1024),
        "error": res.get("error"),
        "scores": res.get("scores"),
        "stderr": [x for x in lines if not x.startswith("VMHWM_KB")][-1:],
    }


def _png(path: Path, side: int) -> None:
    """A smooth gradient PNG (compresses to a small file; memory is about decoded pixels)."""
    from PIL import Image

    row = np.linspace(0, 255, side, dtype=np.float32)
    img = Image.fromarray(np.broadcast_to(row.astype(np.uint8)[None, :, None], (side, side, 3)).copy())
    img.save(path, compress_level=1)


def _clip(path: Path, n: int) -> None:
    """A 4K pan over a tiled photo, libx264 ultrafast, streamed frame by frame."""
    import av
    from skimage import data

    tile = np.tile(data.astronaut(), (5, 8, 1))  # 2560x4096
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 3840, 2160, "yuv420p"
        stream.options = {"crf": "23", "preset": "ultrafast"}
        for i in range(n):
            x, y = (2 * i) % 256, i % 400
            frame = np.ascontiguousarray(tile[y : y + 2160, x : x + 3840])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=int, default=30)
    ap.add_argument("--long", type=int, default=300)
    ap.add_argument("--skip-video", action="store_true")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="qualitas-mem-") as tmp:
        t = Path(tmp)
        for side in (16384, 9000):
            png = t / f"img{side}.png"
            _png(png, side)
            results[f"png {side}x{side}"] = _peak_run([str(png), "--ref", str(png), "--metric", "psnr"])
            print(f"png {side}x{side}:", json.dumps(results[f"png {side}x{side}"]), flush=True)
            png.unlink()
        if not args.skip_video:
            for n in (args.short, args.long):
                clip = t / f"clip{n}.mp4"
                _clip(clip, n)
                key = f"4K {n} frames"
                results[key] = _peak_run([str(clip), "--ref", str(clip), "--metric", "psnr,ssim"])
                print(f"{key}:", json.dumps(results[key]), flush=True)
                clip.unlink()


if __name__ == "__main__":
    main()

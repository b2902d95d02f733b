"""Throughput of the foundation metrics (psnr, psnr_y, ssim, ms_ssim, vmaf) at 1080p.

Makes a 1080p clip from a real photo with camera motion (x264 CRF 10) and a CRF-35 copy,
then measures in ONE run, interleaved, best of ``--repeat`` (other load on the machine
affects all of them alike):

* ffmpeg: plain decode of both files, ``psnr``+``ssim`` filters, ``libvmaf`` filter alone;
* qualitas ``vmaf.score_files`` (the same libvmaf, through the subprocess wrapper);
* the qualitas tensor metrics on frames decoded once beforehand (metric cost only, no
  decoding), per metric and psnr+ssim+ms_ssim together, on cpu (and cuda when present);
* the SSIM moment filter in the (B,5,H,W) layout against the channels-last layout used.

    .venv/bin/python benchmarks/bench_metrics.py [--seconds 2] [--repeat 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from qualitas.functional.filters import gaussian_kernel1d, separable_filter2d
from qualitas.metrics import get_metric
from qualitas.metrics.vmaf import find_ffmpeg_with_libvmaf, score_files

MEDIA = Path(os.environ.get("QUALITAS_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))
PHOTO = MEDIA / "images" / "opencv_aloeL.jpg"


def make_clip(out: Path, n: int, crf: int, width: int = 1920, height: int = 1080, fps: int = 25) -> Path:
    """Pan + zoom over PHOTO (a moving crop resized to WxH), x264 at ``crf``."""
    import av
    from PIL import Image

    img = Image.open(PHOTO).convert("RGB")
    iw, ih = img.size
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i in range(n):
            t = i / max(1, n - 1)
            cw = iw * (0.9 - 0.2 * t)
            ch = cw * height / width
            x0, y0 = (iw - cw) * t, (ih - ch) * 0.5
            frame = img.resize((width, height), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def decode_rgb(path: Path) -> torch.Tensor:
    """All frames as uint8 (N,3,H,W) (a short clip: fits in memory)."""
    import av

    with av.open(str(path)) as c:
        arr = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def run_ffmpeg(args: list[str]) -> None:
    subprocess.run(
        [find_ffmpeg_with_libvmaf(), "-hide_banner", "-nostdin", "-loglevel", "error", *args], check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="libvmaf threads (0: all cores)")
    args = parser.parse_args()
    n = int(round(args.seconds * 25))
    tmp = Path(tempfile.mkdtemp(prefix="qualitas-bench-"))
    print(f"making a {n}-frame 1080p pair in {tmp} ...", flush=True)
    ref = make_clip(tmp / "ref.mp4", n, crf=10)
    dist = tmp / "dist.mp4"
    run_ffmpeg(["-i", str(ref), "-c:v", "libx264", "-preset", "veryfast", "-crf", "35", str(dist)])
    threads = args.threads or (os.cpu_count() or 1)

    d8, r8 = decode_rgb(dist), decode_rgb(ref)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def metric_job(names: tuple[str, ...], device: str) -> Callable[[], None]:
        metrics = [get_metric(m, device) for m in names]

        def job() -> None:
            for i in range(0, n, args.batch):
                d = d8[i : i + args.batch].to(device).float() / 255
                r = r8[i : i + args.batch].to(device).float() / 255
                for m in metrics:
                    m(d, r)
            if device == "cuda":
                torch.cuda.synchronize()

        return job

    stack = torch.rand(1, 5, 1080, 1920)
    window = gaussian_kernel1d(11, 1.5)
    stack_cl = stack.contiguous(memory_format=torch.channels_last)
    jobs: dict[str, tuple[Callable[[], None], int]] = {
        "ffmpeg decode both (-f null)": (lambda: run_ffmpeg(
            ["-i", str(dist), "-i", str(ref), "-map", "0:v", "-f", "null", "-", "-map", "1:v", "-f", "null", "-"]), n),
        "ffmpeg psnr+ssim filters": (lambda: run_ffmpeg(
            ["-i", str(dist), "-i", str(ref), "-lavfi", "[0:v][1:v]psnr;[0:v][1:v]ssim", "-f", "null", "-"]), n),
        "ffmpeg libvmaf filter": (lambda: run_ffmpeg(
            ["-i", str(dist), "-i", str(ref), "-lavfi", f"[0:v][1:v]libvmaf=n_threads={threads}",
             "-f", "null", "-"]), n),
        "qualitas vmaf.score_files": (lambda: score_files(dist, ref, threads=threads), n),
        "moment filter (B,5,H,W) layout": (lambda: separable_filter2d(stack, window), 1),
        "moment filter channels-last": (lambda: separable_filter2d(stack_cl, window), 1),
    }  # fmt: skip
    for device in devices:
        jobs[f"uint8 -> float conversion only [{device}]"] = (metric_job((), device), n)
        for names in (("psnr",), ("psnr_y",), ("ssim",), ("ms_ssim",), ("psnr", "ssim", "ms_ssim")):
            jobs[f"qualitas {'+'.join(names)} [{device}, frames pre-decoded]"] = (
                metric_job(names, device),
                n,
            )

    best = {k: float("inf") for k in jobs}
    for _ in range(args.repeat):
        for name, (job, _) in jobs.items():
            t0 = time.perf_counter()
            job()
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"\n{'job':58s} {'frames/s':>10s}  {'s/frame':>8s}")
    for name, (_, frames) in jobs.items():
        print(f"{name:58s} {frames / best[name]:10.1f}  {best[name] / frames:8.4f}")
    print(f"\ntorch threads {torch.get_num_threads()}, cpu cores {os.cpu_count()}, libvmaf threads {threads}")


if __name__ == "__main__":
    main()

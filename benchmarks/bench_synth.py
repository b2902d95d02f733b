"""Benchmark `qualitas data synth` throughput on the shared real media.

Measures, in ONE run (so other load on the machine affects all of them alike):

* images/s: distorted images made per second (all 21 types x 5 levels) on real photos
  resized to 512 px on the longer side (KADID-10k size), with the default teacher labels
  (ms_ssim + psnr) and without labels (their cost is the difference);
* video seconds/s: seconds of distorted video made per second (the codec ladders
  libx264/libx265/libvpx-vp9/libsvtav1 + the resolution ladder, 5 levels each) from
  pristine clips cut from real videos, with VMAF labels and without;
* the same image build with ``--jobs 2`` (processes) next to ``--jobs 1``.

Throughput is given per wall second of the phase and per CPU second (this process plus
its children: workers, ffmpeg/libvmaf), the latter being steadier on a shared machine.

Every build starts from an empty folder (no resume). Prints a Markdown table.

    .venv/bin/python benchmarks/bench_synth.py [--max-images 4] [--clip-seconds 2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from qualitas.data.synth.build import SynthConfig, build
from qualitas.data.synth.teacher import ImageTeacherConfig, VideoTeacherConfig

MEDIA = Path(os.environ.get("QUALITAS_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))
IMAGES = ("opencv_baboon.jpg", "skimage_astronaut.png", "opencv_fruits.jpg", "sklearn_china.jpg",
          "skimage_coffee.png", "opencv_building.jpg", "skimage_chelsea.png", "opencv_messi5.jpg")  # fmt: skip
VIDEOS = ("carphone_pristine.mp4", "bikes.mp4")


def _stage(src: Path, names: tuple[str, ...], dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        os.symlink(src / n, dst / n)
    return dst


def _cpu() -> float:
    """CPU seconds of this process and its finished children (ffmpeg/libvmaf, workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(cfg: SynthConfig):
    t, c = time.perf_counter(), _cpu()
    res = build(cfg)
    return res, time.perf_counter() - t, _cpu() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-images", type=int, default=4)
    ap.add_argument("--clip-seconds", type=float, default=2.0)
    ap.add_argument("--jobs", type=int, default=2, help="process count for the parallel image run")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        imgs = _stage(MEDIA / "images", IMAGES[: args.max_images], tmp / "img")
        vids = _stage(MEDIA / "videos", VIDEOS, tmp / "vid")
        rows = []

        def image_run(name: str, out: str, **kw) -> None:
            cfg = SynthConfig(out=tmp / out, images=imgs, image_max_side=512, progress=False, **kw)
            res, wall, cpu = _timed(cfg)
            rows.append((name, f"{res.image_items} images", f"{res.image_items / res.image_seconds:.2f} images/s",
                         f"{res.image_items / cpu:.2f} images/CPU-s", f"{wall:.1f} s"))  # fmt: skip

        def video_run(name: str, out: str, **kw) -> None:
            cfg = SynthConfig(
                out=tmp / out, videos=vids, clip_seconds=args.clip_seconds, progress=False, **kw
            )
            res, wall, cpu = _timed(cfg)
            rows.append((name, f"{res.video_items} clips, {res.video_content_seconds:.0f} s of video",
                         f"{res.video_content_seconds / res.video_seconds:.2f} video s/s",
                         f"{res.video_content_seconds / cpu:.2f} video s/CPU-s", f"{wall:.1f} s"))  # fmt: skip

        image_run("images, teacher ms_ssim+psnr, jobs 1", "i1", teacher=ImageTeacherConfig())
        image_run("images, no labels, jobs 1", "i0", teacher=None)
        image_run(
            f"images, teacher ms_ssim+psnr, jobs {args.jobs}",
            "ij",
            teacher=ImageTeacherConfig(),
            jobs=args.jobs,
        )
        video_run("videos, VMAF labels, jobs 1", "v1", video_teacher=VideoTeacherConfig(threads=0))
        video_run("videos, no labels, jobs 1", "v0", video_teacher=None)

        print(f"images: {', '.join(IMAGES[: args.max_images])} (<= 512 px); 21 types x 5 levels")
        print(f"videos: {', '.join(VIDEOS)}, first {args.clip_seconds:g} s; "
              "libx264/libx265/libvpx-vp9/libsvtav1 + downscale ladders x 5 levels")  # fmt: skip
        print(f"cpu cores: {os.cpu_count()}, load average at end: {os.getloadavg()[0]:.1f}\n")
        print("| run | work | throughput (wall) | per CPU-second | wall incl. pristine prep |")
        print("|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

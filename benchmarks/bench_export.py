"""Export runtimes on this CPU: images/s of NR models (resnet18, mobilenetv3) at 224 px,
PyTorch eager vs TorchScript vs ONNX Runtime vs OpenVINO, batch 1 and 16; and frames/s of
``qualitas score --model`` on a 1080p clip (decode + preprocess + model) vs decoding alone.

Models are built with random weights (speed does not depend on them), given a card like
a training run's (resize to 224x224) and exported with ``qualitas.export.pipeline``, the
code ``qualitas export`` runs. Runtimes are measured round-robin (one timed block of each
per round, best of ``--rounds``) so machine load hits all of them alike; CPU ms/image is
the process CPU time (all threads) per image.

    .venv/bin/python benchmarks/bench_export.py [--rounds 5] [--seconds 1.5] [--frames 120] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from qualitas.export.card import ModelCard
from qualitas.export.formats import FORMATS
from qualitas.export.pipeline import Source, export_model
from qualitas.models import build_model

MEDIA = Path(__file__).resolve().parents[1] / ".." / "shared" / "media"
BACKBONES = {"resnet18": "resnet18", "mobilenetv3": "mobilenetv3_large_100"}
RUNTIMES = ("eager", "torchscript", "onnx", "openvino")


def card_for(model: torch.nn.Module, name: str) -> ModelCard:
    info = {
        "input_size": {"mode": "resize", "size": [224, 224]},
        "score_norm": {"kind": "minmax", "shift": 1.0, "scale": 4.0},
        "score_range": [1.0, 5.0],
        "higher_is_better": True,
        # video models: qualitas' default sampling (data.sampling), one clip per video
        "sampling": {"mode": "uniform", "num_frames": 8, "step": 1},
        "eval_clips": 1,
    }
    return ModelCard.from_training(model.spec.to_dict(), info, name=name)


def timed(fn, seconds: float) -> tuple[float, float, int]:
    """Run ``fn`` repeatedly for about ``seconds``: (wall s, process CPU s, calls)."""
    fn()  # warm-up (allocations, lazy init)
    n, w0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - w0 < seconds or n < 2:
        fn()
        n += 1
    return time.perf_counter() - w0, time.process_time() - c0, n


def bench_models(tmp: Path, rounds: int, seconds: float) -> list[dict]:
    rows = []
    for short, backbone in BACKBONES.items():
        model = build_model("nr_iqa", backbone=backbone, head="mlp", hidden=256).eval()
        card = card_for(model, short)
        runners = {"eager": lambda *x, m=model: m(*x)}
        for fmt in ("torchscript", "onnx", "openvino"):
            res = export_model(Source(model, card), fmt, tmp / f"{short}_{fmt}", verify=False)
            runners[fmt] = FORMATS.get(fmt).load(res.path, res.card, "cpu")
        for batch in (1, 16):
            x = torch.rand(batch, 3, 224, 224)
            best: dict[str, tuple[float, float]] = {}
            with torch.inference_mode():
                for _ in range(rounds):
                    for name in RUNTIMES:
                        wall, cpu, n = timed(lambda r=runners[name], x=x: r(x), seconds)
                        ips, cpu_ms = batch * n / wall, 1000 * cpu / (batch * n)
                        if name not in best or ips > best[name][0]:
                            best[name] = (ips, cpu_ms)
            for name in RUNTIMES:
                ips, cpu_ms = best[name]
                rows.append(
                    {"model": short, "batch": batch, "runtime": name, "images_per_s": round(ips, 2),
                     "cpu_ms_per_image": round(cpu_ms, 2), "x_eager": round(ips / best["eager"][0], 2)}
                )  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


def make_1080p(dst: Path, frames: int) -> Path:
    import imageio_ffmpeg

    src = MEDIA / "videos" / "bigbuckbunny.mp4"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(src), "-frames:v", str(frames)]
    cmd += ["-vf", "scale=1920:1080", "-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def bench_video(tmp: Path, frames: int, rounds: int) -> list[dict]:
    """``score_pairs`` with a model as scorer (what ``qualitas score --model`` runs) vs decoding.

    Two mobilenetv3 models, ONNX: the NR image model scores every frame (decode, convert,
    resize 1080p -> 224, model); the NR video model (mean pooling) samples its default clip
    (8 uniform frames): every frame is decoded, only the sampled ones are converted and run.
    """
    import av

    import qualitas
    from qualitas.io.video import iter_batches
    from qualitas.runtime.score import Pair, ScoreOptions, auto_batch_size, score_pairs

    clip = make_1080p(tmp / "bbb_1080p.mp4", frames)
    batch = auto_batch_size(1920, 1080)
    models = {}
    for arch in ("nr_iqa", "nr_vqa"):
        folder = tmp / f"mobilenetv3_{arch}_onnx"
        kw = {"temporal_pool": "mean", "num_segments": 8} if arch == "nr_vqa" else {}
        m = build_model(arch, backbone=BACKBONES["mobilenetv3"], head="mlp", hidden=256, **kw).eval()
        export_model(Source(m, card_for(m, arch)), "onnx", folder, verify=False)
        models[arch] = qualitas.load_model(folder)

    def decode_only() -> int:
        with av.open(str(clip)) as c:
            return sum(1 for _ in c.decode(video=0))

    def decode_convert() -> int:
        return sum(len(b.indices) for b in iter_batches(clip, batch))

    def scored(arch: str):
        def run() -> int:
            results, _ = score_pairs([Pair(str(clip))], None, ScoreOptions(), scorers={arch: models[arch]})
            if results[0].error:
                raise RuntimeError(results[0].error)
            return frames  # frames of the video covered (the video model scores one clip of it)

        return run

    cases = {
        "decode only (PyAV, no RGB conversion)": decode_only,
        "decode + RGB float (iter_batches, what frame scoring reads)": decode_convert,
        "score --model nr_iqa mobilenetv3 ONNX, every frame": scored("nr_iqa"),
        "score --model nr_vqa mobilenetv3 ONNX, default sampling (8 uniform frames)": scored("nr_vqa"),
    }
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, fn in cases.items():
            w0, c0 = time.perf_counter(), time.process_time()
            n = fn()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            if name not in best or n / wall > best[name][0]:
                best[name] = (n / wall, 1000 * cpu / n)
    rows = [
        {"what": k, "frames_per_s": round(v[0], 2), "cpu_ms_per_frame": round(v[1], 2)}
        for k, v in best.items()
    ]
    for r in rows:
        print(json.dumps(r), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.5, help="timed block per runtime per round")
    ap.add_argument("--frames", type=int, default=120, help="frames of the 1080p clip")
    ap.add_argument("--video-rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch/ONNX Runtime/OpenVINO threads (default: torch's)")
    ap.add_argument("--only", choices=("models", "video"), help="run one part")
    ap.add_argument("--json", help="write all rows to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # runners read it when they are loaded
    print(f"torch threads {torch.get_num_threads()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        rows = bench_models(Path(tmp), args.rounds, args.seconds) if args.only != "video" else []
        video = bench_video(Path(tmp), args.frames, args.video_rounds) if args.only != "models" else []
    if args.json:
        Path(args.json).write_text(json.dumps({"models": rows, "video": video}, indent=1))


if __name__ == "__main__":
    main()

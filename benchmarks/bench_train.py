"""Training-engine throughput on this machine.

1. resnet18 NR-IQA at 224 px: training samples/s and the share of each step spent waiting
   for data (2 loader workers), measured by the engine's own ThroughputMonitor.
2. Video clips decoded on the fly vs pre-extracted frame folders: loader clips/s and
   training samples/s side by side (same videos, same sampling, same model).

Inputs are built from /work/shared/media (real photos and clips) into a temp folder.
Usage: .venv/bin/python benchmarks/bench_train.py [--steps 12] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MEDIA = Path("/work/shared/media")
REPO = Path(__file__).resolve().parents[1]


def make_images(root: Path, n: int = 48, size: int = 256) -> Path:
    """``n`` JPEG crops (size x size) of the shared photos with a random MOS."""
    photos = sorted((MEDIA / "images").glob("*.jpg"))[:16]
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        im = Image.open(photos[i % len(photos)]).convert("RGB")
        if min(im.size) < size:
            im = im.resize(
                (max(size, im.width * size // min(im.size)), max(size, im.height * size // min(im.size)))
            )
        x, y = rng.integers(0, im.width - size + 1), rng.integers(0, im.height - size + 1)
        p = root / "img" / f"{i:03d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        im.crop((x, y, x + size, y + size)).save(p, quality=90)
        rows.append({"path": f"img/{p.name}", "mos": float(rng.uniform(1, 5)), "group": str(i % 16)})
    man = root / "images.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return man


def make_videos(root: Path, copies: int = 5) -> tuple[Path, Path]:
    """The shared clips (re-encoded 320 px wide, H.264) and their frames as JPEG folders."""
    import av

    from qualitas.io.video import iter_frames

    srcs = [MEDIA / "videos" / n for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]
    rows_v, rows_f = [], []
    for k in range(copies):
        for src in srcs:
            name = f"{src.stem}_{k}"
            frames = [f.data for f in iter_frames(src, max_frames=64)]
            h, w = frames[0].shape[-2:]
            tw = 320
            th = int(round(h * tw / w / 2) * 2)
            vid = root / "videos" / f"{name}.mp4"
            vid.parent.mkdir(parents=True, exist_ok=True)
            fdir = root / "frames" / name
            fdir.mkdir(parents=True, exist_ok=True)
            with av.open(str(vid), "w") as out:
                st = out.add_stream("libx264", rate=25)
                st.width, st.height, st.pix_fmt = tw, th, "yuv420p"
                st.options = {"crf": "23", "preset": "veryfast"}
                for i, f in enumerate(frames):
                    f = torch.nn.functional.interpolate(
                        f[None], size=(th, tw), mode="bilinear", antialias=True
                    )[0]
                    arr = (f.permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
                    Image.fromarray(arr).save(fdir / f"{i:05d}.jpg", quality=90)
                    for pkt in st.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                        out.mux(pkt)
                for pkt in st.encode():
                    out.mux(pkt)
            mos = 1.0 + 4.0 * ((k * 3 + srcs.index(src)) % 7) / 6
            rows_v.append({"path": f"videos/{name}.mp4", "mos": mos, "group": name})
            rows_f.append({"path": f"frames/{name}", "mos": mos, "group": name})
    mv, mf = root / "videos.jsonl", root / "frames.jsonl"
    mv.write_text("".join(json.dumps(r) + "\n" for r in rows_v))
    mf.write_text("".join(json.dumps(r) + "\n" for r in rows_f))
    return mv, mf


def train_throughput(config: str, manifest: Path, out: Path, steps: int, extra: list[str]) -> dict:
    """Train for ``steps`` batches; the engine's ThroughputMonitor gives samples/s and data wait."""
    from qualitas.training.config import load_config
    from qualitas.training.run import train

    ov = [
        f"data.manifest={manifest}",
        "data.root=null",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        f"trainer.limit_train_batches={steps}",
        "trainer.limit_val_batches=1",
        "trainer.progress_bar=false",
        "data.split_ratios={train: 0.9, val: 0.1, test: 0.0}",
        "data.num_workers=2",
        *extra,
    ]
    t = time.perf_counter()
    res = train(load_config(REPO / config, ov), out=out)
    thr = res.metrics["throughput"]
    return {
        "samples_per_s": thr["samples_per_s"],
        "data_wait": thr["data_wait"],
        "wall_s": time.perf_counter() - t,
    }


def loader_throughput(manifest: Path, dataset: str, batches: int, frames: int, workers: int) -> float:
    """Clips/s of the data pipeline alone (decode + sampling + crop), ``workers`` processes."""
    from torch.utils.data import DataLoader

    from qualitas.data.datasets import DATASETS, collate_skip
    from qualitas.data.manifest import read_manifest
    from qualitas.data.sampling import ClipSampling
    from qualitas.data.transforms import InputSize

    recs = read_manifest(manifest)
    ds = DATASETS.get(dataset)(
        recs,
        manifest.parent,
        train=True,
        input_size=InputSize("crop", (224, 224)),
        sampling=ClipSampling("uniform", frames),
    )
    loader = DataLoader(ds, batch_size=2, shuffle=True, num_workers=workers, collate_fn=collate_skip)
    n, t0 = 0, None
    for epoch in range(100):
        for i, b in enumerate(loader):
            if t0 is None and i == 0 and epoch == 0:
                t0 = time.perf_counter()  # skip worker start-up
                continue
            n += b["size"]
            if n >= batches * 2:
                return n / (time.perf_counter() - t0)
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    ap.add_argument("--video-steps", type=int, default=6, help="training batches per video run")
    ap.add_argument("--only", choices=("images", "videos"), help="run one part")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    out: dict = {"torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only != "videos":
            man = make_images(root)
            out["nr_iqa_resnet18_224"] = train_throughput(
                "configs/nr_iqa_koniq.yaml",
                man,
                root / "run_img",
                args.steps,
                ["data.batch_size=8", "data.input_size.size=[224,224]", "data.input_size.resize_short=0"],
            )
            print("resnet18 NR-IQA 224px:", out["nr_iqa_resnet18_224"], flush=True)
        if args.only != "images":
            mv, mf = make_videos(root)
            for name, m, ds in (("video_on_the_fly", mv, "video"), ("frame_folders", mf, "frames")):
                out[name] = {"loader_clips_per_s": loader_throughput(m, ds, 10, 8, 2)}
                out[name].update(
                    train_throughput(
                        "configs/nr_vqa_konvid_tsm.yaml",
                        m,
                        root / f"run_{name}",
                        args.video_steps,
                        [
                            "model.backbone=resnet18",
                            "data.batch_size=2",
                            "data.input_size.size=[224,224]",
                            "data.input_size.resize_short=0",
                            "trainer.precision=32-true",
                            f"data.dataset={ds}",
                            "data.eval_clips=1",
                        ],
                    )
                )
                print(name, out[name], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Model-side throughput: train steps per backbone, TSM overhead, shift implementation, evaluation.

Compares variants side by side in one run (interleaved repeats, median), so ratios are
meaningful even on a busy machine. No data loading: these are the model's ceilings.

    .venv/bin/python benchmarks/bench_models.py [--size 224] [--batch 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from qualitas.evaluation import evaluate
from qualitas.losses import build_loss
from qualitas.models import build_model, temporal_shift


def interleaved(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each fn, interleaved A B C, C B A, ... after a warm-up
    (the order alternates so neither variant always runs right after the other)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        for name in list(fns) if i % 2 == 0 else list(fns)[::-1]:
            fn = fns[name]
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def train_step(
    model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], target: torch.Tensor
) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = build_loss("l1")
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(*inputs), target).backward()
        opt.step()

    return step


def official_shift(x: torch.Tensor, n_segment: int, fold_div: int) -> torch.Tensor:
    """TSM authors' in-place formulation, for comparison."""
    nt, c, h, w = x.size()
    x = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, s = args.batch, args.size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}, {s}x{s}")
    print(f"load average at start (1/5/15 min): {os.getloadavg()}")

    # 1. NR-IQA train step (forward + backward + AdamW) per backbone
    images = (torch.rand(b, 3, s, s),)
    target = torch.rand(b)
    steps = {
        bb: train_step(build_model("nr_iqa", backbone=bb), images, target)
        for bb in ("resnet18", "mobilenetv3_large_100", "efficientnet_b0")
    }
    res = interleaved(steps, args.repeats)
    print("\n## NR-IQA train step, samples/s (model only, no data loading)")
    for name, sec in res.items():
        print(f"{name:24s} {b / sec:8.1f} samples/s  ({sec * 1000:.0f} ms/step)")

    # 2. FR fusion cost: diff6 (one 6-channel pass) vs siamese (two passes)
    pair = (torch.rand(b, 3, s, s), torch.rand(b, 3, s, s))
    res = interleaved(
        {
            "diff6": train_step(build_model("fr_iqa", backbone="resnet18", fusion="diff6"), pair, target),
            "siamese": train_step(build_model("fr_iqa", backbone="resnet18", fusion="siamese"), pair, target),
        },
        args.repeats,
    )
    print("\n## FR-IQA resnet18 train step, samples/s")
    for name, sec in res.items():
        print(f"{name:24s} {b / sec:8.1f} samples/s")
    print(f"siamese / diff6 time ratio: {res['siamese'] / res['diff6']:.2f}")

    # 3. TSM overhead on a video model: same backbone, clips of 8 frames at half size
    t, vs = 8, s // 2
    clip = (torch.rand(max(1, b // 4), t, 3, vs, vs),)
    vtarget = torch.rand(clip[0].shape[0])
    res = interleaved(
        {
            "plain": train_step(build_model("nr_vqa", backbone="resnet18", num_segments=t), clip, vtarget),
            "tsm": train_step(
                build_model("nr_vqa", backbone="resnet18", tsm=True, num_segments=t), clip, vtarget
            ),
        },
        args.repeats,
    )
    print(f"\n## NR-VQA resnet18 train step, {clip[0].shape[0]} clips x {t} frames x {vs}px")
    for name, sec in res.items():
        print(f"{name:24s} {clip[0].shape[0] * t / sec:8.1f} frames/s")
    print(f"tsm / plain time ratio: {res['tsm'] / res['plain']:.3f}")

    # 4. shift implementation: export-friendly cat vs the official in-place writes
    x = torch.randn(4 * t, 256, 28, 28)
    res = interleaved(
        {
            "cat (qualitas)": lambda: temporal_shift(x, t, 8),
            "in-place (official)": lambda: official_shift(x, t, 8),
        },
        max(20, args.repeats),
    )
    print("\n## temporal_shift on (32, 256, 28, 28)")
    for name, sec in res.items():
        print(f"{name:24s} {sec * 1000:8.2f} ms")
    print(f"cat / in-place time ratio: {res['cat (qualitas)'] / res['in-place (official)']:.2f}")

    # 5. evaluation of a large validation set
    rng = np.random.default_rng(0)
    mos = rng.uniform(1, 5, 20000)
    pred = mos + rng.normal(0, 0.5, mos.size)
    res = interleaved({"evaluate 20k items": lambda: evaluate(pred, mos)}, 3)
    print(f"\n## evaluate(): {res['evaluate 20k items'] * 1000:.0f} ms for 20000 items (with logistic fit)")
    print(f"\nload average at end (1/5/15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()

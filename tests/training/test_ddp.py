"""Two-process DDP on the CPU (gloo): validation counts every item exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import overrides, write_jsonl

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ddp_validation_covers_every_item_once(image_data, tmp_path):
    rows = [json.loads(line) for line in image_data.read_text().splitlines()]
    for r in rows:
        r["split"] = "val" if r["group"] == "rocket" else "train"
    rows = [r for r in rows if not (r["group"] == "rocket" and r["dist_level"] == 7)]  # 7 val items: odd
    rows = [r for r in rows if r["group"] in ("rocket", "coffee")]
    man = write_jsonl(rows, image_data.parent / "ddp.jsonl")
    out = tmp_path / "ddp"
    args = [
        sys.executable,
        "-m",
        "qualitas",
        "train",
        str(REPO / "configs" / "nr_iqa_koniq.yaml"),
        "--out",
        str(out),
    ]
    for o in overrides(
        man,
        "data.input_size.size=[32,32]",
        "data.input_size.resize_short=0",
        "data.batch_size=2",
        "data.val_batch_size=2",
        "trainer.max_epochs=1",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.limit_train_batches=2",
    ):
        args += ["-o", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cov = json.loads((out / "coverage_val.json").read_text())
    # DistributedSampler pads 7 items to 8 (4 per rank); the duplicate is dropped.
    assert cov["received"] == 8
    assert sorted(cov["indices"]) == list(range(7))
    assert set(cov["ranks"]) == {0, 1}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["n"] == 7
    preds = (out / "predictions_val.jsonl").read_text().splitlines()
    assert len(preds) == 7 and len({json.loads(p)["path"] for p in preds}) == 7

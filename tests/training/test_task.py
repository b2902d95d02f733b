"""Pure pieces of the task: learning-rate schedule, DDP de-duplication, per-video aggregation."""

from __future__ import annotations

import math

import pytest
import torch

from qualitas.training.task import dedupe_and_aggregate, lr_factor, metric_mode


def test_warmup_then_cosine():
    kw = {"total_steps": 110, "warmup_steps": 10, "name": "cosine", "warmup_start": 0.1, "min_lr": 0.0}
    assert lr_factor(0, **kw) == pytest.approx(0.1)
    assert lr_factor(5, **kw) == pytest.approx(0.55)
    assert lr_factor(10, **kw) == pytest.approx(1.0)
    assert lr_factor(60, **kw) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(110, **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(60, **{**kw, "min_lr": 0.2}) == pytest.approx(0.6)


def test_step_decay_and_constant():
    kw = {"total_steps": 100, "warmup_steps": 0, "name": "step", "step_size": 30, "gamma": 0.1}
    assert [lr_factor(s, **kw) for s in (0, 29, 30, 59, 60)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor(77, total_steps=100, name="constant") == 1.0


def test_metric_mode():
    assert metric_mode("val/srocc") == "max" and metric_mode("val/rmse") == "min"
    assert metric_mode("val/rmse_fitted") == "min" and metric_mode("plcc") == "max"


def test_dedupe_drops_distributed_padding_and_averages_clips():
    # 5 clips over 3 videos (items 0,0,1,2,2); DDP padding repeats index 0 and 1.
    index = torch.tensor([0, 2, 4, 0, 1, 3, 1])
    item = torch.tensor([0, 1, 2, 0, 0, 2, 0])
    pred = torch.tensor([1.0, 5.0, 7.0, 1.0, 3.0, 9.0, 3.0])
    mos = torch.tensor([2.0, 4.0, 6.0, 2.0, 2.0, 6.0, 2.0])
    items, p, m, uniq = dedupe_and_aggregate(index, item, pred, mos)
    assert uniq.tolist() == [0, 1, 2, 3, 4]
    assert items.tolist() == [0, 1, 2]
    assert p.tolist() == [2.0, 5.0, 8.0]  # (1+3)/2, 5, (9+7)/2
    assert m.tolist() == [2.0, 4.0, 6.0]
    assert not any(math.isnan(v) for v in p.tolist())

"""Plots write real PNG files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qualitas.errors import UsageError
from qualitas.evaluation import plots


def test_scatter_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    mos = rng.uniform(1, 5, 50)
    out = plots.scatter(mos + rng.normal(0, 0.2, 50), mos, tmp_path / "sub" / "scatter.png", title="val")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (600, 500)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_training_curves_from_lightning_style_csv(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,train/loss,lr-AdamW,val/srocc,val/plcc_fitted\n"
        "0,9,0.9,0.001,,\n0,9,,,0.41,0.45\n1,19,0.5,0.0005,,\n1,19,,,0.83,0.86\n"
    )
    cols = plots.read_csv_log(csv)
    assert cols["val/srocc"][1] == 0.41 and np.isnan(cols["val/srocc"][0])
    out = plots.training_curves(csv, tmp_path / "curves.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (700, 900)  # three panels: loss, lr, metrics
    with pytest.raises(UsageError, match="no CSV log"):
        plots.training_curves(tmp_path / "missing.csv", tmp_path / "x.png")


def test_log_columns_grouped_by_scale():
    groups = plots.group_log_columns(
        [
            "train/loss",
            "lr-AdamW",
            "val/srocc",
            "val/plcc_fitted",
            "val/rmse",
            "val/n",
            "sps",
            "train/data_wait",
        ]
    )
    assert groups["loss"] == ["train/loss"] and groups["learning rate"] == ["lr-AdamW"]
    assert groups["correlation"] == ["val/srocc", "val/plcc_fitted"]
    assert groups["rmse"] == ["val/rmse"] and groups["samples/s"] == ["sps"]
    assert groups["other"] == ["train/data_wait"]  # item counts (val/n) are not plotted

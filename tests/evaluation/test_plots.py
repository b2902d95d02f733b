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
        assert im.format == "PNG" and im.size == (900, 900)  # three panels: loss, lr, metrics
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


def test_training_curves_legend_of_12_series_fits_and_covers_no_curve(tmp_path, monkeypatch):
    names = [
        f"{s}/{m}{f}" for s in ("val", "test") for m in ("srocc", "krocc", "plcc") for f in ("", "_fitted")
    ]
    rows = ["epoch,step," + ",".join(names)]
    rows += [f"{e},{10 * e}," + ",".join(f"{0.5 + 0.01 * (e + i)}" for i in range(12)) for e in range(5)]
    csv = tmp_path / "metrics.csv"
    csv.write_text("\n".join(rows) + "\n")
    figs = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (figs.append(fig), save(fig, path))[1])
    plots.training_curves(csv, tmp_path / "curves.png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figs[0]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert len(legend.get_texts()) == 12
    box, fig_box, ax_box = legend.get_window_extent(renderer), fig.bbox, ax.get_window_extent(renderer)
    assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 and fig_box.y0 <= box.y0 and box.y1 <= fig_box.y1
    assert box.x0 >= ax_box.x1  # beside the panel, not over its curves

"""Plots written as PNG files: prediction-vs-MOS scatter with the fitted logistic, and
training curves from a CSV log (Lightning's ``metrics.csv``).

matplotlib is used through ``Figure`` objects (Agg canvas), never pyplot, so plotting is
thread-safe and needs no display. Files are written atomically.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qualitas.errors import DependencyError, UsageError
from qualitas.evaluation.correlation import ArrayLike, as_pair, evaluate, fit_logistic
from qualitas.files import temp_for

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(**kwargs: object) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise DependencyError("plots need matplotlib: pip install 'qualitas[train]'") from None
    return Figure(**kwargs)  # type: ignore[arg-type]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_for(path, suffix=".png")  # a plain open()'s permissions, not mkstemp's 0600
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def scatter(
    pred: ArrayLike,
    mos: ArrayLike,
    path: str | Path,
    *,
    title: str | None = None,
    xlabel: str = "prediction",
    ylabel: str = "MOS",
) -> Path:
    """Scatter of predictions vs MOS with the fitted VQEG logistic; figures in the legend."""
    p, m = as_pair(pred, mos)
    finite = np.isfinite(p)
    fig = _figure(figsize=(6, 5))
    ax = fig.subplots()
    ax.scatter(p[finite], m[finite], s=12, alpha=0.6, edgecolors="none", label=f"items (n={p.size})")
    figures = evaluate(p, m)
    if finite.all() and p.size >= 2 and np.ptp(p) > 0:
        fit = fit_logistic(p, m)
        xs = np.linspace(p.min(), p.max(), 200)
        ax.plot(xs, fit(xs), color="C3", lw=2, label=f"{fit.method} fit")
    stats_label = (
        f"SROCC {figures['srocc']:.4f}  KROCC {figures['krocc']:.4f}\n"
        f"PLCC {figures['plcc_fitted']:.4f}  RMSE {figures['rmse_fitted']:.4f} (fitted)"
    )
    ax.plot([], [], " ", label=stats_label)  # legend-only entry carrying the figures
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "prediction vs MOS")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def read_csv_log(csv_path: str | Path) -> dict[str, list[float]]:
    """Columns of a CSV log as float lists (empty cells -> NaN; non-numeric columns dropped)."""
    path = Path(csv_path)
    if not path.is_file():
        raise UsageError(f"no CSV log at '{path}'")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UsageError(f"CSV log '{path}' has no rows")
    columns: dict[str, list[float]] = {}
    for name in rows[0]:
        values: list[float] = []
        for row in rows:
            cell = (row.get(name) or "").strip()
            try:
                values.append(float(cell) if cell else math.nan)
            except ValueError:
                break
        else:
            if any(not math.isnan(v) for v in values):
                columns[name] = values
    return columns


def group_log_columns(names: list[str]) -> dict[str, list[str]]:
    """Split log column names into panels with one scale each (item counts dropped).

    Correlations in [-1, 1] next to an RMSE of 40 would be flattened on a shared axis.
    """

    def last(name: str) -> str:
        return re.split(r"[/.]", name.lower())[-1]

    groups = {
        "loss": [n for n in names if "loss" in n.lower()],
        "learning rate": [n for n in names if "lr" in re.split(r"[^a-z0-9]+", n.lower())],
        "correlation": [n for n in names if last(n).split("_")[0] in ("srocc", "krocc", "plcc")],
        "rmse": [n for n in names if last(n).split("_")[0] == "rmse"],
        "samples/s": [n for n in names if last(n) in ("sps", "samples_per_s")],
    }
    grouped = {n for group in groups.values() for n in group}
    groups["other"] = [n for n in names if n not in grouped and last(n) != "n"]
    return groups


def training_curves(csv_path: str | Path, out_png: str | Path, *, title: str | None = None) -> Path:
    """Plot every numeric column of a CSV log against ``step`` (or ``epoch``).

    Panels: losses (names containing ``loss``), learning rates (``lr``), correlations
    (SROCC/KROCC/PLCC), RMSE, throughput, and any other column (item counts left out).
    Rows where a column is empty are skipped for that column (Lightning logs train and
    validation values on different rows).
    """
    cols = read_csv_log(csv_path)
    x_name = next((n for n in ("step", "epoch") if n in cols), None)
    xs = cols.pop(x_name) if x_name else [float(i) for i in range(len(next(iter(cols.values()), [])))]
    if x_name == "step":
        cols.pop("epoch", None)
    groups = group_log_columns(list(cols))
    panels = [(g, names) for g, names in groups.items() if names]
    if not panels:
        raise UsageError(f"CSV log '{csv_path}' has no numeric column to plot")
    # Constrained layout makes room for legends placed outside the axes (below).
    fig = _figure(figsize=(9, 3 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    x = np.asarray(xs)
    for ax, (group, names) in zip(axes, panels):
        for name in names:
            y = np.asarray(cols[name])
            ok = ~np.isnan(y) & ~np.isnan(x)
            ax.plot(x[ok], y[ok], marker="o" if ok.sum() < 30 else None, ms=3, label=name)
        ax.set_ylabel(group)
        ax.grid(alpha=0.3)
        if len(names) <= 4:
            ax.legend(fontsize=8, loc="best")
        else:
            # Many series (val/test x SROCC/KROCC/PLCC x raw/fitted = 12): a legend inside
            # would cover the curves, so it goes to the right of the panel.
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    axes[-1].set_xlabel(x_name or "row")
    axes[0].set_title(title or Path(csv_path).name)
    return _save(fig, out_png)

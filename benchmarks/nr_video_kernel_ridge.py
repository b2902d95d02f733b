"""RBF kernel ridge vs the shipped ridge read-out on the cached nr-video features.

A nonlinear closed-form read-out of the same Lite0 clip statistics (``probe_features.pt`` of
a probe run of configs/default_nr_video.yaml): kernel ridge with an RBF kernel
``exp(-|a - b|^2 / (g * C))`` on the standardised features, alone and fitted to the ridge's
residual. Prints per-video SROCC and RMSE (VMAF points) on validation and test, and the
mean SROCC of a 5-fold cross-validation over the training sources (grouped: a fold holds
whole sources), the fairer way to choose between read-outs than 7 validation sources. Used for
docs/default-models.md ("Tried"):

    PYTHONPATH=src .venv/bin/python benchmarks/nr_video_kernel_ridge.py --run runs/nrvid_v21
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from qualitas.training.probe import ridge


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--alpha", type=float, default=3.0, help="the linear ridge's strength (shipped: 3)")
    ap.add_argument("--manifest", type=Path, default=Path("build/defaults/synth_videos/videos.jsonl"))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    d = torch.load(args.run / "probe_features.pt", weights_only=True)["features"]
    frames = d["train"]["frames"]
    mu, sd = frames.mean(0), (frames.var(0, unbiased=False) + 1e-5).sqrt()
    z = {s: ((d[s]["clips"] - mu) / sd).double() for s in d}
    y = d["train"]["target"].double()
    to_mos = np.polyfit(d["train"]["target"].numpy(), d["train"]["mos"].numpy(), 1)

    def figures(split: str, pred: torch.Tensor) -> tuple[float, float]:
        per: dict[int, list] = {}
        for v, m, i in zip(pred.tolist(), d[split]["mos"].tolist(), d[split]["item"].tolist()):
            per.setdefault(i, [[], m])[0].append(v)
        p = np.polyval(to_mos, np.array([np.mean(v[0]) for v in per.values()]))
        t = np.array([v[1] for v in per.values()])
        return round(float(spearmanr(p, t).statistic), 3), round(float(np.sqrt(np.mean((p - t) ** 2))), 2)

    def show(name: str, pred: dict) -> None:
        print(f"{name:34s} val {figures('val', pred['val'])}  test {figures('test', pred['test'])}")

    w, b = ridge(z["train"], y, args.alpha)
    base = {s: z[s] @ w + b for s in d}
    show(f"ridge alpha {args.alpha:g} (shipped read-out)", base)
    x = z["train"]

    def sqdist(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (a * a).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2 * a @ c.T

    dtr = sqdist(x, x)
    eye = torch.eye(len(y), dtype=x.dtype)
    for g in (1.0, 2.0, 4.0, 8.0):
        gamma = 1.0 / (g * x.shape[1])
        k = torch.exp(-gamma * dtr)
        cross = {s: torch.exp(-gamma * sqdist(z[s], x)) for s in ("val", "test")}
        for lam in (1e-4, 1e-3):
            a = torch.linalg.solve(k + lam * len(y) * eye, y - y.mean())
            show(f"kernel ridge g {g:g} lambda {lam:g}", {s: cross[s] @ a + y.mean() for s in cross})
            a = torch.linalg.solve(k + lam * len(y) * eye, y - base["train"])
            show("  + on the ridge residual", {s: base[s] + cross[s] @ a for s in cross})
    cross_validate(d, z["train"], y, args)
    return 0


def cross_validate(d: dict, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    """Mean per-video SROCC of 5 grouped folds over the training sources, per read-out."""
    splits = json.loads((args.run / "splits.json").read_text())
    rows = (json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip())
    meta = {r["path"]: r for r in rows}
    paths = [splits["train"][i] for i in d["train"]["item"].tolist()]
    group = np.array([meta[p].get("group") or meta[p]["ref"] for p in paths])
    item = d["train"]["item"].numpy()
    sources = np.unique(group)
    np.random.default_rng(0).shuffle(sources)
    candidates = [("ridge", a, 0.0) for a in (1.0, 3.0, 10.0)]
    candidates += [("kernel", lam, g) for g in (1.0, 2.0, 4.0) for lam in (1e-4, 1e-3)]
    result: dict[tuple, list[float]] = {c: [] for c in candidates}
    for fold in np.array_split(sources, 5):
        held = torch.from_numpy(np.isin(group, fold))
        xtr, ytr, xte = x[~held], y[~held], x[held]
        dtr = _sqdist(xtr, xtr)
        dte = _sqdist(xte, xtr)
        for kind, strength, g in candidates:
            if kind == "ridge":
                w, b = ridge(xtr, ytr, strength)
                pred = xte @ w + b
            else:
                gamma = 1.0 / (g * x.shape[1])
                k = torch.exp(-gamma * dtr) + strength * len(ytr) * torch.eye(len(ytr), dtype=x.dtype)
                pred = torch.exp(-gamma * dte) @ torch.linalg.solve(k, ytr - ytr.mean()) + ytr.mean()
            per: dict[int, list] = {}
            for v, t, i in zip(pred.tolist(), y[held].tolist(), item[held.numpy()].tolist()):
                per.setdefault(i, [[], t])[0].append(v)
            p = [np.mean(v[0]) for v in per.values()]
            result[(kind, strength, g)].append(float(spearmanr(p, [v[1] for v in per.values()]).statistic))
    print("grouped 5-fold CV over the training sources (mean per-video SROCC):")
    for (kind, strength, g), v in result.items():
        name = f"ridge alpha {strength:g}" if kind == "ridge" else f"kernel ridge g {g:g} lambda {strength:g}"
        print(f"  {name:34s} {np.mean(v):.3f}  folds {[round(f, 3) for f in v]}")


def _sqdist(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (a * a).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2 * a @ c.T


if __name__ == "__main__":
    sys.exit(main())

"""Two-stage read-out of the nr-image features: distortion identification, then per-family quality.

BIQI / DIIVINE's recipe (Moorthy & Bovik 2010, 2011) on the cached features of a probe run
(``probe_features.pt``): a softmax classifier of the synth family (pristine included) and
one ridge per family (fit on that family's and the pristine training rows), mixed by the
class probabilities; compared with the run's own single ridge, and blended with it. Prints
SROCC against the teacher and the mean ladder Kendall tau (the five named families / all)
on validation and test. Used for docs/default-models.md ("Tried"):

    PYTHONPATH=src .venv/bin/python benchmarks/nr_image_two_stage.py --run runs/nrimg_feat
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_defaults import ladder_taus, manifest_rows  # noqa: E402

from qualitas.training.probe import ridge  # noqa: E402


def softmax_classifier(z: torch.Tensor, labels: torch.Tensor, k: int, weight_decay: float) -> tuple:
    """Multinomial logistic regression ``z (N, C) -> k`` classes by L-BFGS: ``(W (C, k), b (k,))``."""
    w = torch.zeros(z.shape[1], k, dtype=z.dtype, requires_grad=True)
    b = torch.zeros(k, dtype=z.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=200, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, labels) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a probe run of configs/default_nr_image.yaml")
    ap.add_argument("--manifest", type=Path, default=Path("build/defaults/synth_images/images.jsonl"))
    ap.add_argument("--alpha", type=float, default=1.0, help="ridge strength (x rows), both read-outs")
    ap.add_argument("--rank-weight", type=float, default=10.0, help="the single ridge's within-photo term")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    meta = manifest_rows(args.manifest)
    splits = json.loads((args.run / "splits.json").read_text())
    feats = torch.load(args.run / "probe_features.pt", weights_only=True)["features"]
    paths = {s: [splits[s][i] for i in feats[s]["item"].tolist()] for s in feats}
    frames = feats["train"]["frames"]
    mu, sd = frames.mean(0), (frames.var(0, unbiased=False) + 1e-5).sqrt()
    z = {s: ((feats[s]["clips"] - mu) / sd).double() for s in feats}
    y = {s: feats[s]["mos"].double() for s in feats}
    families = sorted({m["dist_type"] for m in meta.values()})
    index = {f: i for i, f in enumerate(families)}
    label = {s: torch.tensor([index[meta[p]["dist_type"]] for p in paths[s]]) for s in feats}
    groups = [meta[p]["group"] for p in paths["train"]]

    def figures(split: str, pred: torch.Tensor) -> dict:
        score: dict[str, list[float]] = {}
        for p, v in zip(paths[split], pred.tolist()):
            score.setdefault(p, []).append(v)
        mean = {p: sum(v) / len(v) for p, v in score.items()}
        taus = ladder_taus([], meta, mean)
        rho = spearmanr(list(mean.values()), [meta[p]["mos"] for p in mean]).statistic
        return {"srocc": round(float(rho), 3), "five": round(taus["_five"], 3), "all": round(taus["_all"], 3)}

    w, b = ridge(z["train"], y["train"], args.alpha, groups=groups, rank_weight=args.rank_weight)
    single = {s: z[s] @ w + b for s in ("val", "test")}
    cw, cb = softmax_classifier(z["train"], label["train"], len(families), 1e-3)
    prob = {s: torch.softmax(z[s] @ cw + cb, 1) for s in ("val", "test")}
    pristine = index["pristine"]
    experts = {}
    for f in families:
        if f == "pristine":
            continue
        rows = ((label["train"] == index[f]) | (label["train"] == pristine)).nonzero().squeeze(1)
        experts[f] = ridge(z["train"][rows], y["train"][rows], args.alpha)
    top = float(y["train"].max()) * 0.98
    for s in ("val", "test"):
        acc = float((prob[s].argmax(1) == label[s]).double().mean())
        mixed = sum(prob[s][:, index[f]] * (z[s] @ ew + eb) for f, (ew, eb) in experts.items())
        jw, jb = experts["jpeg"]  # pristine rows: any expert's read-out, floored near the top
        mixed = mixed + prob[s][:, pristine] * (z[s] @ jw + jb).clamp(min=top)
        print(f"{s}: family accuracy {acc:.3f}")
        print(f"  single ridge (shipped recipe)  {figures(s, single[s])}")
        print(f"  two-stage                      {figures(s, mixed)}")
        for lam in (0.5, 0.7, 0.9):
            print(
                f"  blend {lam:.1f} single + {1 - lam:.1f} two-stage {figures(s, lam * single[s] + (1 - lam) * mixed)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``trainer.method: probe``: a ridge head fit in closed form on a frozen backbone's features.

The standard way to read out a pretrained representation (CONTRIQUE, Re-IQA report their
features so) and the recipe of the v2 default models: with the backbone frozen, gradient
training would repeat the same expensive forward pass every epoch to move one linear layer.
Here each item's features are computed once (``trainer.probe_views`` random views of every
training item — the configured crops/fragments and clip sampling — and the deterministic
evaluation view of validation/test items), standardised, and the ridge solution is computed
for every strength of ``trainer.probe_alphas``; the one with the best validation
``trainer.monitor`` is kept.

The fitted standardisation and weights are written into the model itself (the ``stats``
pool's ``BatchNorm1d`` statistics, or folded into the linear layer for an ``avg`` pool), so
the run directory is the one ``qualitas train`` writes (checkpoint, ``metrics.json``,
``predictions_*.jsonl``, ``history.json``) and ``eval``/``export``/``score`` use it unchanged.
Hand-written because no maintained library fits a ridge on streamed torch features with
grouped validation; it is ten lines of linear algebra (float64 normal equations).

Supported models: ``nr_iqa`` and ``nr_vqa`` (``temporal_pool: mean``) with a timm backbone,
``freeze_backbone: true`` and a ``head: mlp``: ``hidden: 0`` (linear) is fit by ridge in closed
form; ``hidden > 0`` (one hidden layer) by Adam on the cached features (full batch,
``trainer.probe_epochs``; the weight decays of ``probe_alphas`` tried; best validation epoch
kept) — seconds, since the features are computed once. ``model.calibration: logistic`` (ridge
heads) adds the VQEG 4-parameter logistic after the linear read-out, fitted on the training
predictions: monotone, so ranks are unchanged; it bends the scale where the targets saturate
(VMAF near 100, the teacher near its floor). The features are saved as
``probe_features.pt`` in the run; ``trainer.probe_features_from: RUN`` reuses them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from qualitas.data.datasets import collate_skip
from qualitas.errors import ConfigError
from qualitas.files import atomic_write_text
from qualitas.models.heads import RegressionHead, calibration_curve
from qualitas.training.config import TrainConfig

log = logging.getLogger("qualitas.training")

BN_EPS = 1e-5
"""``BatchNorm1d``'s default eps: the standardisation the exported graph applies."""


def _parts(model: nn.Module) -> tuple[nn.Module, list[nn.Linear], bool]:
    """The frozen backbone, the head's linear layers and whether the model is a video model."""
    from qualitas.models.backbones import TimmBackbone
    from qualitas.models.heads import RegressionHead
    from qualitas.models.iqa import NRIQAModel
    from qualitas.models.temporal import MeanPool
    from qualitas.models.vqa import NRVQAModel

    if not isinstance(model, (NRIQAModel, NRVQAModel)):
        raise ConfigError("trainer.method=probe supports the no-reference models nr_iqa and nr_vqa")
    video = isinstance(model, NRVQAModel)
    if video and not isinstance(model.pool, MeanPool):
        raise ConfigError("trainer.method=probe needs model.temporal_pool: mean (a linear read-out)")
    bb = model.features.backbone
    if not isinstance(bb, TimmBackbone) or not bb.freeze:
        raise ConfigError("trainer.method=probe needs a timm backbone with model.freeze_backbone: true")
    head = model.head
    layers = list(head.mlp) if isinstance(head, RegressionHead) else []
    linear = [m for m in layers if isinstance(m, nn.Linear)]
    if not linear:
        raise ConfigError("trainer.method=probe needs model.head: mlp (hidden: 0 for ridge, > 0 for an MLP)")
    return bb, linear, video


@torch.no_grad()
def _extract(model: nn.Module, dataset, *, views: int, batch_size: int, workers: int, what: str) -> dict:
    """Raw features of every sample: ``frames (N*T, C)`` (for the standardisation), ``clips
    (N, C)`` (frame mean), ``target``, ``mos`` and ``item`` ``(N,)``."""
    bb, _, video = _parts(model)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_skip
    )
    frames, clips, target, mos, item = [], [], [], [], []
    total = views * len(loader)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"probe features ({what})", unit="batch", leave=False)
    skipped = 0
    for _ in range(views):
        for batch in loader:
            skipped += int(batch.get("skipped", 0))
            if int(batch.get("size", 0)) == 0:
                continue
            x = batch["input"].float()
            b = x.shape[0]
            flat = x.flatten(0, 1) if video else x
            f = bb.raw_features(model.features.normalize(flat)).double()
            frames.append(f)
            clips.append(f.reshape(b, -1, f.shape[-1]).mean(dim=1) if video else f)
            target.append(batch["target"].double())
            mos.append(batch["mos"].double())
            item.append(batch["item"].long())
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if not clips:
        raise ConfigError(f"probe: no readable {what} sample")
    return {
        "frames": torch.cat(frames),
        "clips": torch.cat(clips),
        "target": torch.cat(target),
        "mos": torch.cat(mos),
        "item": torch.cat(item),
        "skipped": skipped,
    }


FEATURES_FILE = "probe_features.pt"


def features_key(cfg: TrainConfig) -> str:
    """What determines the cached features: the data (sizing, sampling, split), the backbone
    and its pooling, the views and the seed — not the head or the strengths."""
    data = {
        k: v
        for k, v in cfg.to_dict()["data"].items()
        if k not in ("batch_size", "val_batch_size", "num_workers", "pin_memory")
    }
    model = {
        k: cfg.model.get(k)
        for k in ("name", "backbone", "pretrained", "pretrained_path", "pool", "nss_patch", "num_segments")
    }
    return json.dumps(
        {"data": data, "model": model, "views": cfg.trainer.probe_views, "seed": cfg.run.seed},
        sort_keys=True,
        default=str,
    )


def _load_features(run: Path, key: str) -> dict:
    path = run / FEATURES_FILE if run.is_dir() else run
    if not path.is_file():
        raise ConfigError(f"trainer.probe_features_from: no {FEATURES_FILE} in {run}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged cache is the user's file
        raise ConfigError(f"trainer.probe_features_from: cannot read {path} ({type(err).__name__})") from None
    if not isinstance(obj, dict) or obj.get("key") != key:
        raise ConfigError(
            f"trainer.probe_features_from: {path} was computed with other data, backbone, sizing or views"
        )
    return obj["features"]


def centre_within(x: torch.Tensor, groups: list) -> torch.Tensor:
    """``x (N, ...)`` minus the mean of its rows' group: ``groups`` has one key per row."""
    index: dict = {}
    for k, g in enumerate(groups):
        index.setdefault(g, []).append(k)
    out = x.clone()
    for rows in index.values():
        out[rows] = x[rows] - x[rows].mean(dim=0)
    return out


def ridge(
    z: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    *,
    groups: list | None = None,
    rank_weight: float = 0.0,
) -> tuple[torch.Tensor, Any]:
    """Ridge regression with an unpenalised intercept: ``z (N, C)``, ``y (N,)`` -> ``(w (C,), b)``
    (``y (N, K)``, e.g. one-hot classes -> ``(w (C, K), b (K,))``).

    Minimises ``|z w + b - y|^2 + alpha * N * |w|^2`` (the penalty scales with the rows, so
    one grid of ``alpha`` suits small and large sets). With ``rank_weight`` g > 0 and a group
    key per row, also ``g * |z_c w - y_c|^2`` where ``z_c``, ``y_c`` are centred within each
    group: the differences between the rows of one content are fit g times more (and the
    penalty is ``alpha * N * (1 + g)``, so ``alpha`` keeps its meaning).
    """
    zm, ym = z.mean(dim=0), y.mean()
    zc, yc = z - zm, y - ym
    gram = zc.T @ zc
    rhs = zc.T @ yc
    if rank_weight > 0:
        if groups is None or len(groups) != z.shape[0]:
            raise ValueError("ridge: rank_weight needs one group key per row")
        zg, yg = centre_within(z, groups), centre_within(y, groups)
        gram = gram + rank_weight * (zg.T @ zg)
        rhs = rhs + rank_weight * (zg.T @ yg)
    gram.diagonal().add_(alpha * z.shape[0] * (1.0 + max(rank_weight, 0.0)))
    w = torch.linalg.solve(gram, rhs)
    b = ym - zm @ w
    return w, (float(b) if y.ndim == 1 else b)


def fit_calibration(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The VQEG logistic from a head's training predictions ``pred (N,)`` to ``target (N,)``
    as :func:`~qualitas.models.heads.calibration_curve` parameters ``(7,)`` (float64), for
    ``model.calibration: logistic``; a line when the logistic does not converge or does not
    lower the training squared error by at least 1 %. The output is clipped to the range of
    the training targets (a prediction outside it is wrong by at least its distance to it).

    Fitted on the training rows (each view of each item): the held-out splits stay unseen.
    """
    from qualitas.evaluation.correlation import fit_logistic

    y = target.double().numpy()
    # A logistic that is not clearly better than the line is a line in disguise, with huge,
    # cancelling parameters (float32 in the model): keep the line then.
    fit = fit_logistic(pred.double().numpy(), y, min_gain=0.01)
    if fit.method == "logistic":
        b1, b2, b3, b4 = fit.params
        params = (b1 - b2, b3, abs(b4), 0.0, b2)
    elif fit.method == "linear":
        params = (0.0, 0.0, 1.0, *fit.params)
    else:  # no spread in the predictions: the mean target
        params = (0.0, 0.0, 1.0, 0.0, fit.params[0])
    return torch.tensor((*params, float(y.min()), float(y.max())), dtype=torch.float64)


def calibrate(pred: torch.Tensor, params: torch.Tensor | None) -> torch.Tensor:
    """``pred`` through the fitted curve (unchanged when ``params`` is None)."""
    return pred if params is None else calibration_curve(pred, params.to(pred.dtype))


def fit_mlp(
    z: torch.Tensor,
    y: torch.Tensor,
    head: nn.Module,
    *,
    weight_decay: float,
    epochs: int,
    lr: float,
    evaluate,
) -> tuple[dict, float]:
    """Adam on cached standardised features ``z (N, C)`` -> targets ``y (N,)`` (L1 loss).

    ``evaluate(head) -> float`` (higher is better) picks the best epoch; returns its state
    dict and figure. Full batch: the features fit in memory, and each step is one matmul.
    """
    torch.manual_seed(0)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    zf, yf = z.float(), y.float()
    best_state, best = {k: v.clone() for k, v in head.state_dict().items()}, -math.inf
    for epoch in range(epochs):
        head.train()
        opt.zero_grad()
        loss = torch.nn.functional.smooth_l1_loss(head(zf), yf, beta=0.05)
        loss.backward()
        opt.step()
        if epoch % 5 == 4 or epoch == epochs - 1:
            head.eval()
            figure = evaluate(head)
            if figure > best:
                best, best_state = figure, {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    head.eval()
    return best_state, best


def _per_item(pred: torch.Tensor, mos: torch.Tensor, item: torch.Tensor) -> tuple[list, list, list]:
    """Mean prediction per item (several clips of one video), in item order."""
    out: dict[int, list] = {}
    for p, m, i in zip(pred.tolist(), mos.tolist(), item.tolist()):
        out.setdefault(i, [0.0, 0, m])
        out[i][0] += p
        out[i][1] += 1
    items = sorted(out)
    return items, [out[i][0] / out[i][1] for i in items], [out[i][2] for i in items]


def _figures(pred: list[float], mos: list[float]) -> dict[str, float]:
    from qualitas.evaluation.correlation import evaluate
    from qualitas.training.task import FIGURES

    pairs = [(p, m) for p, m in zip(pred, mos) if math.isfinite(p) and math.isfinite(m)]
    if len(pairs) < 3:
        return {"n": float(len(pairs)), **dict.fromkeys(FIGURES, float("nan"))}
    figs = evaluate([p for p, _ in pairs], [m for _, m in pairs])
    return {k: float(v) for k, v in figs.items() if isinstance(v, (int, float))}


def _better(a: float, b: float, mode: str) -> bool:
    if math.isnan(a):
        return False
    return math.isnan(b) or (a > b if mode == "max" else a < b)


def fit_probe(cfg: TrainConfig, *, out: str | Path | None = None):
    """Fit and write a probe run (the same run directory as ``train``); returns ``RunResult``."""
    import lightning as L

    from qualitas.models import build_model
    from qualitas.models.checkpoint import load_matching_weights
    from qualitas.training.folders import RunResult, open_run_folder
    from qualitas.training.prepare import check_model_data, prepare_data, run_info
    from qualitas.training.task import FIGURES, metric_mode

    views = int(cfg.trainer.probe_views)
    alphas = [float(a) for a in cfg.trainer.probe_alphas]
    if views < 1 or not alphas or min(alphas) <= 0:
        raise ConfigError("trainer.probe_views must be >= 1 and trainer.probe_alphas positive numbers")
    rank_weight = float(cfg.trainer.probe_rank_weight)
    if not rank_weight >= 0:
        raise ConfigError(f"trainer.probe_rank_weight must be >= 0, got {cfg.trainer.probe_rank_weight}")
    monitor_name = cfg.trainer.monitor.removeprefix("val/")
    if monitor_name not in FIGURES:
        raise ConfigError(
            f"unknown trainer.monitor '{cfg.trainer.monitor}'; choose one of {', '.join(FIGURES)}"
        )
    monitor, mode = f"val/{monitor_name}", metric_mode(f"val/{monitor_name}")
    L.seed_everything(cfg.run.seed, workers=True, verbose=False)
    model = build_model(cfg.model["name"], **cfg.model_kwargs)
    bb, linear, video = _parts(model)  # refuse unsupported models before a run folder exists
    if rank_weight > 0 and len(linear) != 1:
        raise ConfigError("trainer.probe_rank_weight needs a ridge head (model.hidden: 0)")
    calibrated = isinstance(model.head, RegressionHead) and model.head.calibration_params is not None
    if calibrated and len(linear) != 1:
        raise ConfigError("model.calibration: logistic needs a ridge head (model.hidden: 0)")
    with open_run_folder(cfg, out) as folder:
        run_dir = folder.path
        t0 = time.perf_counter()
        data = prepare_data(cfg.data, full_reference=False, target="mos", run_dir=run_dir)
        check_model_data(model.spec, data.dataset_name, cfg.data)
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        if cfg.run.finetune_from:
            report = load_matching_weights(model, cfg.run.finetune_from)
            atomic_write_text(run_dir / "finetune.json", json.dumps(report, indent=1))
        model.eval()
        folder.started = True  # from the first feature pass on, the folder holds a real run
        # One intra-op thread while loader workers decode on the other cores: OpenMP threads
        # spin-wait when the cores are oversubscribed (measured 57 ms vs 1.9 s per 288x288
        # Lite0 image on 2 busy cores).
        threads = torch.get_num_threads()
        if cfg.data.num_workers > 0:
            torch.set_num_threads(1)
        common = {
            "batch_size": cfg.data.val_batch_size or cfg.data.batch_size,
            "workers": cfg.data.num_workers,
        }
        key = features_key(cfg)
        if cfg.trainer.probe_features_from:
            feats = _load_features(Path(cfg.trainer.probe_features_from), key)
        else:
            feats = {"train": _extract(model, data.datasets["train"], views=views, what="train", **common)}
            for split in ("val", "test"):
                if data.datasets[split] is not None:
                    feats[split] = _extract(model, data.datasets[split], views=1, what=split, **common)
        torch.set_num_threads(threads)
        tmp = run_dir / ".probe_features.pt.tmp"
        torch.save({"key": key, "features": feats}, tmp)
        os.replace(tmp, run_dir / FEATURES_FILE)
        t_feat = time.perf_counter() - t0
        # Standardisation from the training frames (what BatchNorm would accumulate).
        frames = feats["train"]["frames"]
        mu, var = frames.mean(dim=0), frames.var(dim=0, unbiased=False)
        sigma = (var + BN_EPS).sqrt()

        def z(split: str) -> torch.Tensor:
            return (feats[split]["clips"] - mu) / sigma

        ztr, ytr = z("train"), feats["train"]["target"]

        def val_figures(pred_norm: torch.Tensor) -> dict[str, float]:
            _, p, m = _per_item(data.score_norm.inverse(pred_norm), feats["val"]["mos"], feats["val"]["item"])
            return _figures(p, m)

        def signed(figs: dict[str, float]) -> float:
            v = figs[monitor_name]
            return -math.inf if math.isnan(v) else (v if mode == "max" else -v)

        history: list[dict] = []
        head = model.head
        groups = None
        if rank_weight > 0:
            records = data.datasets["train"].records
            groups = [
                records[i].group or records[i].ref or records[i].path for i in feats["train"]["item"].tolist()
            ]
        if len(linear) == 1:  # ridge, closed form
            best = None
            for alpha in alphas:
                w, b = ridge(ztr, ytr, alpha, groups=groups, rank_weight=rank_weight)
                calib = fit_calibration(ztr @ w + b, ytr) if calibrated else None
                figs = val_figures(calibrate(z("val") @ w + b, calib))
                history.append({"alpha": alpha, **{f"val/{k}": v for k, v in figs.items()}})
                log.info(
                    "probe ridge alpha %g: val srocc %.4f, rmse %.4f", alpha, figs["srocc"], figs["rmse"]
                )
                if best is None or _better(figs[monitor_name], best[2][monitor_name], mode):
                    best = (alpha, (w, b, calib), figs)
            assert best is not None  # alphas is non-empty (checked above)
            alpha, (w, b, calib), val = best
            with torch.no_grad():
                linear[0].weight.copy_(w.float().view_as(linear[0].weight))
                linear[0].bias.fill_(float(b))
                if calib is not None:
                    model.head.calibration_params.copy_(calib.float())
        else:  # an MLP head, Adam on the cached features
            best_state, best_fig, alpha = None, -math.inf, alphas[0]
            for wd in alphas:
                for m in head.modules():
                    if isinstance(m, nn.Linear):
                        m.reset_parameters()
                state, fig = fit_mlp(
                    ztr,
                    ytr,
                    head,
                    weight_decay=wd,
                    epochs=int(cfg.trainer.probe_epochs),
                    lr=float(cfg.optimizer.lr),
                    evaluate=lambda h: signed(val_figures(h(z("val").float()).double())),
                )
                history.append({"weight_decay": wd, f"val/{monitor_name}": fig if mode == "max" else -fig})
                log.info("probe mlp weight_decay %g: val %s %.4f", wd, monitor_name, abs(fig))
                if fig > best_fig:
                    best_state, best_fig, alpha = state, fig, wd
            head.load_state_dict(best_state)
            head.eval()
        with torch.no_grad():
            zs = {split: z(split) for split in feats if split != "train"}
            head_out = {split: head(v.float()).double() for split, v in zs.items()}
            val = val_figures(head_out["val"])
            # Write the standardisation into the network: the stats pool's BatchNorm, or
            # folded into the first linear layer.
            if bb.stats is not None:
                norm = bb.stats.norm
                norm.running_mean.copy_(mu.float())
                norm.running_var.copy_(var.float())
                norm.num_batches_tracked.fill_(1)
            else:
                first = linear[0]
                w1 = first.weight.double() / sigma
                first.bias.copy_((first.bias.double() - w1 @ mu).float())
                first.weight.copy_(w1.float())
        info = run_info(cfg, model.spec, data, full_reference=False, target="mos", monitor=monitor)
        ckpt_dir = run_dir / "checkpoints"
        ckpt_dir.mkdir(exist_ok=True)
        ckpt = {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "qualitas": info,
            "epoch": 0,
            "global_step": 0,
            "probe": {"alpha": alpha, "views": views},
        }
        for name in ("best.ckpt", "last.ckpt"):
            tmp = ckpt_dir / f".{name}.tmp"
            torch.save(ckpt, tmp)
            os.replace(tmp, ckpt_dir / name)
        # Predictions with the network as saved (float32), like the gradient runs report them.
        paths = {s: [r.path for r in ds.records] if ds is not None else [] for s, ds in data.datasets.items()}
        results: dict[str, dict] = {}
        for split in ("val", "test"):
            if split not in feats:
                continue
            pred = data.score_norm.inverse(head_out[split])
            items, p, m = _per_item(pred, feats[split]["mos"], feats[split]["item"])
            results[split] = _figures(p, m)
            names = paths.get(split, [])
            lines = [
                json.dumps(
                    {
                        "item": i,
                        "path": names[i] if i < len(names) else None,
                        "pred": pi,
                        "mos": mi if math.isfinite(mi) else None,
                    }
                )
                for i, pi, mi in zip(items, p, m)
            ]
            atomic_write_text(run_dir / f"predictions_{split}.jsonl", "\n".join(lines) + "\n")
        metrics = {
            "best_checkpoint": str(ckpt_dir / "best.ckpt"),
            "best_epoch": 0,
            "monitor": monitor,
            "val": results.get("val", val),
            "test": results.get("test", {}),
            "epochs": 0,
            "method": "probe",
            "probe": {
                "alpha": alpha,
                "rank_weight": rank_weight,
                "calibration": model.head.calibration_params.tolist() if calibrated else None,
                "views": views,
                "features": int(mu.numel()),
                "train_rows": int(ztr.shape[0]),
                "feature_seconds": round(t_feat, 1),
                "seconds": round(time.perf_counter() - t0, 1),
            },
            "skipped_samples": int(sum(f["skipped"] for f in feats.values())),
            "bad_rows": len(data.report.bad_lines),
            "dataset": data.dataset_name,
            "split_sizes": {s: len(v) for s, v in data.splits.items()},
        }
        atomic_write_text(run_dir / "history.json", json.dumps(history, indent=1))
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
        log.info(
            "probe run %s: alpha %g, val srocc %.4f",
            run_dir,
            alpha,
            metrics["val"].get("srocc", float("nan")),
        )
        return RunResult(run_dir, metrics)

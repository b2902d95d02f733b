"""``qualitas eval`` for classification and segmentation runs: the task's figures on a split,
a results file with per-item predictions, the confusion matrix picture and ``--show-dir``
pictures (predicted label, or predicted and true masks side by side).

Inference is a plain loop over the data pipeline (no Lightning), as for quality runs
(:mod:`qualitas.training.predict`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from qualitas.data.datasets import collate_skip
from qualitas.data.manifest import atomic_write_text
from qualitas.errors import UsageError
from qualitas.evaluation.vision import TASK_FIGURES, build_metrics
from qualitas.training.config import TrainConfig, config_and_weights

log = logging.getLogger("qualitas.training")


def fuse_conv_bn(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """Fold each BatchNorm that directly consumes a convolution's output into that convolution
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``), in a copy of ``model`` (eval mode).

    Pairs are found by running ``example`` once with hooks (timm models do not trace with
    ``torch.fx``, so graph-based fusion does not apply). A plain ``BatchNorm2d`` becomes an
    ``Identity``; BatchNorm subclasses with a built-in activation (timm's ``BatchNormAct2d``)
    keep the activation with identity statistics. The fused copy is checked against the
    original on ``example``; on a difference above 1e-3 the original is returned (warning).
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = model.eval()
    x = example if example is not None else torch.rand(2, 3, 64, 64)
    fused = copy.deepcopy(model)
    names = {m: n for n, m in fused.named_modules()}
    produced: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []
    hooks = []
    for m in fused.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(lambda mod, inp, out: produced.__setitem__(id(out), mod)))
        elif isinstance(m, nn.BatchNorm2d):

            def pre(mod, inp):
                conv = produced.get(id(inp[0]))
                if conv is not None and all(b is not mod for _, b in pairs):
                    pairs.append((conv, mod))

            hooks.append(m.register_forward_pre_hook(pre))
    with torch.no_grad():
        want = model(x)
        fused(x)
    for h in hooks:
        h.remove()
    for conv, bn in pairs:
        new = fuse_conv_bn_eval(conv, bn)
        _set(fused, names[conv], new)
        if type(bn) is nn.BatchNorm2d:
            _set(fused, names[bn], nn.Identity())
        else:  # keeps its activation; statistics become the identity
            with torch.no_grad():
                bn.running_mean.zero_()  # type: ignore[union-attr]
                bn.running_var.fill_(1.0 - bn.eps)  # type: ignore[union-attr]
                if bn.affine:
                    bn.weight.fill_(1.0)
                    bn.bias.zero_()
    with torch.no_grad():
        diff = float((fused(x) - want).abs().max())
    if diff > 1e-3:
        log.warning("--fuse-conv-bn: fused model differs by %.3g; evaluating it unfused", diff)
        return model
    log.info("--fuse-conv-bn: %d BatchNorm layers folded (max |diff| %.2g)", len(pairs), diff)
    fused.fused_conv_bn = len(pairs)  # type: ignore[assignment]
    return fused


def _set(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent, _, leaf = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def task_of(path: str | Path) -> str:
    """The task of a config file, run dir or checkpoint (``quality`` for older runs)."""
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise UsageError(f"{p}: unreadable config ({err})") from None
        return str(raw.get("task", "quality")) if isinstance(raw, dict) else "quality"
    from qualitas.training.run import read_checkpoint, resolve_checkpoint

    info = read_checkpoint(resolve_checkpoint(p)).get("qualitas") or {}
    return str(info.get("task", "quality"))


def evaluate_task(
    path: str | Path,
    *,
    weights: str | Path | None = None,
    overrides: list[str] | None = None,
    split: str | None = None,
    out: str | Path = "results.json",
    show_dir: str | Path | None = None,
    max_show: int = 50,
    fuse: bool = False,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str = "cpu",
) -> dict:
    """Evaluate a classification/segmentation model on one split of its data.

    ``path``: a run dir / ``.ckpt`` (its saved config gives the data), or a config file with
    ``weights`` (a run dir or checkpoint). ``overrides`` (``-o key=value``) change the data,
    e.g. ``data.test=other/list.txt``. Default split: ``test`` when configured, else ``val``.
    """
    from qualitas.training.run import load_trained
    from qualitas.training.vision import prepare_vision_data

    cfg, model, info = config_and_weights(
        path, weights, overrides, lambda w: load_trained(w, device=device), lambda info: info.get("config")
    )
    if cfg.task == "quality":
        raise UsageError(f"{path}: a quality model; qualitas eval RUN_DIR evaluates it with correlations")
    classes = list(info.get("classes") or [])
    data = prepare_vision_data(cfg, num_classes=len(classes) or None, eval_only=True)
    if classes and data.classes != classes:
        raise UsageError(
            f"the data's classes ({', '.join(data.classes[:4])}, ...) differ from the model's "
            f"({', '.join(classes[:4])}, ...)"
        )
    split = split or ("test" if data.datasets.get("test") is not None else "val")
    ds = data.datasets.get(split)
    if ds is None:
        raise UsageError(f"no {split} split configured (data.{split})")
    if fuse:
        first = ds[0]["input"][None].to(device)
        model = fuse_conv_bn(model, torch.cat([first, first.flip(-1)]))
    metrics = build_metrics(data.kind, data.num_classes, data.ignore_index)
    loader = DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_skip
    )
    rows: list[dict] = []
    shown = 0
    paths = ds.paths  # type: ignore[attr-defined]
    palette = data.palette
    with torch.no_grad():
        for batch in loader:
            x, y = batch["input"].to(device), batch["target"]
            logits = model(x).float().cpu()
            if data.kind == "segmentation":  # counted at each mask's own resolution
                preds = metrics.update_full(logits, batch["full_mask"])
            else:
                metrics.update(logits, y)
            for i, idx in enumerate(batch["index"].tolist()):
                if data.kind == "segmentation":
                    row = _seg_row(preds[i], batch["full_mask"][i], data.ignore_index)
                else:
                    row = _row(data.kind, logits[i], y[i], data.classes, data.ignore_index)
                rows.append({"path": paths[idx], **row})
                if show_dir is not None and shown < max_show:
                    _show(
                        data.kind,
                        x[i].cpu(),
                        logits[i],
                        y[i],
                        row,
                        data.classes,
                        palette,
                        data.ignore_index,
                        Path(show_dir) / f"{shown:05d}_{Path(paths[idx]).stem}.png",
                    )
                    shown += 1
    figures = metrics.compute()
    result = {
        "task": cfg.task,
        "split": split,
        "n": len(rows),
        "classes": data.classes,
        "metrics": figures,
        "fused_conv_bn": int(getattr(model, "fused_conv_bn", 0)),
        "checkpoint": info.get("checkpoint"),
        "predictions": rows,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    result["out"] = str(out)
    if data.kind == "classification":
        try:
            from qualitas.evaluation.vision import confusion_matrix_plot

            png = confusion_matrix_plot(
                figures["confusion"], data.classes, out.with_suffix(".png"), title=f"{cfg.run.name} {split}"
            )
            result["plot"] = str(png)
        except ImportError as err:
            log.warning("confusion matrix not plotted: %s", err)
    return result


def scalar_figures(kind: str, figures: dict) -> dict:
    return {k: figures[k] for k in ("n", *TASK_FIGURES[kind]) if k in figures}


def _row(kind: str, z: torch.Tensor, y: torch.Tensor, classes: list[str], ignore: int) -> dict:
    if kind == "classification":
        p = z.softmax(0)
        k = int(p.argmax())
        return {"pred": classes[k], "score": float(p[k]), "true": classes[int(y)], "correct": k == int(y)}
    if kind == "multilabel":
        p = z.sigmoid()
        return {
            "pred": [classes[i] for i in range(len(p)) if p[i] >= 0.5],
            "true": [classes[i] for i in range(len(p)) if y[i] > 0.5],
            "scores": [round(float(v), 5) for v in p],
        }
    return _seg_row(z.argmax(0), y, ignore)


def _seg_row(pred: torch.Tensor, y: torch.Tensor, ignore: int) -> dict:
    valid = y != ignore
    acc = float((pred[valid] == y[valid]).float().mean()) if valid.any() else float("nan")
    return {"pixel_acc": acc}


def _show(kind, image, z, y, row, classes, palette, ignore, path: Path) -> None:
    from qualitas.evaluation.vision import draw_caption, overlay_mask, save_picture, to_uint8

    arr = to_uint8(image)
    if kind == "segmentation":
        pred = overlay_mask(arr, z.argmax(0).to(torch.uint8).numpy(), palette, ignore_index=ignore)
        true = overlay_mask(arr, y.to(torch.uint8).numpy(), palette, ignore_index=ignore)
        both = np.concatenate([pred, np.zeros((arr.shape[0], 2, 3), np.uint8), true], axis=1)
        pic = draw_caption(both, [f"predicted | true   pixel acc {row['pixel_acc']:.3f}"], scale_to=384)
    elif kind == "classification":
        mark = "ok" if row["correct"] else "WRONG"
        pic = draw_caption(arr, [f"pred {row['pred']} {row['score']:.2f}", f"true {row['true']} ({mark})"])
    else:
        pic = draw_caption(
            arr, ["pred " + (", ".join(row["pred"]) or "-"), "true " + (", ".join(row["true"]) or "-")]
        )
    save_picture(pic, path)


def check_config_data(cfg: TrainConfig) -> dict:
    """``qualitas data check CONFIG``: read every split, decode every mask (segmentation),
    count classes; raises the first problem as a one-line :class:`DataError`."""
    import dataclasses

    from qualitas.training.config import DETECTION_TASKS
    from qualitas.training.vision import prepare_vision_data

    if cfg.task in DETECTION_TASKS:
        from qualitas.training.detection_eval import check_detection_config

        return check_detection_config(cfg)
    checked = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, check_media="full"))
    num = cfg.model_kwargs.get("num_classes")
    data = prepare_vision_data(checked, num_classes=num, eval_only=True)
    return {
        "task": cfg.task,
        "kind": data.kind,
        "classes": data.classes,
        "splits": data.split_sizes(),
        "counts": data.counts,
    }


def browse_dataset(cfg: TrainConfig, out: str | Path, *, split: str = "train", max_items: int = 100) -> int:
    """``qualitas data browse``: each image of ``split`` with its annotation drawn on (class
    names as a caption, masks as a coloured overlay beside the image), as PNGs in ``out``.
    Images are shown as the model sees them in evaluation (``data.input_size``), with no
    augmentation. Returns the number of pictures written."""
    from qualitas.evaluation.vision import draw_caption, overlay_mask, save_picture, to_uint8
    from qualitas.training.config import DETECTION_TASKS
    from qualitas.training.vision import prepare_vision_data

    if cfg.task in DETECTION_TASKS:  # true boxes (and skeletons) drawn on
        from qualitas.training.detection_eval import browse_detection

        return browse_detection(cfg, out, split=split, max_items=max_items)
    data = prepare_vision_data(cfg, num_classes=cfg.model_kwargs.get("num_classes"), eval_only=True)
    ds = data.datasets.get(split)
    if ds is None:
        raise UsageError(f"no {split} split configured (data.{split})")
    paths = ds.paths  # type: ignore[attr-defined]
    n = min(len(ds), max_items)  # type: ignore[arg-type]
    for i in range(n):
        item = ds[i]
        arr = to_uint8(item["input"])
        y = item["target"]
        if data.kind == "segmentation":
            mask = y.to(torch.uint8).numpy()
            over = overlay_mask(arr, mask, data.palette, ignore_index=data.ignore_index)
            both = np.concatenate([arr, np.zeros((arr.shape[0], 2, 3), np.uint8), over], axis=1)
            present = [data.classes[k] for k in np.unique(mask) if k < data.num_classes]
            pic = draw_caption(both, [", ".join(present) or "(all ignored)"], scale_to=384)
        elif data.kind == "multilabel":
            pic = draw_caption(arr, [", ".join(data.classes[k] for k in range(len(y)) if y[k] > 0.5)])
        else:
            pic = draw_caption(arr, [data.classes[int(y)]])
        save_picture(pic, Path(out) / f"{i:05d}_{Path(paths[i]).stem}.png")
    return n

"""Task metrics of classification and segmentation (torchmetrics), the confusion-matrix
picture, and drawing labels / masks onto images (``--show-dir``, ``qualitas data browse``).

Figures (docs/tasks.md):

- classification: ``top1``, ``top5`` (top-k accuracy, micro), ``macro_precision``,
  ``macro_recall``, ``macro_f1``, per class ``precision``/``recall``/``f1``/``support`` lists
  and the ``confusion`` matrix (rows: true class, columns: predicted);
- multi-label: ``map`` (macro average precision), ``macro_f1``, ``micro_f1``, ``exact_match``
  (threshold 0.5 on the sigmoid), per class ``ap``/``f1``;
- segmentation: ``miou`` (mean over classes present in targets or predictions),
  ``pixel_acc``, ``mean_acc``, per class ``iou``/``acc``; ``ignore_index`` pixels excluded;
  at the configured input size (``update``) or at each mask's own resolution
  (``update_full``: logits upsampled bilinearly, as mmsegmentation/PaddleSeg count).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qualitas.errors import DependencyError

LOWER_IS_BETTER = ("loss",)
TASK_FIGURES = {
    "classification": ("top1", "top5", "macro_precision", "macro_recall", "macro_f1"),
    "multilabel": ("map", "macro_f1", "micro_f1", "exact_match"),
    "segmentation": ("miou", "pixel_acc", "mean_acc"),
}
"""Scalar figures per task (any can be ``trainer.monitor``)."""


def _tm():
    try:
        import torchmetrics.classification as tmc
    except ImportError:
        raise DependencyError("task metrics need torchmetrics: pip install 'qualitas[train]'") from None
    return tmc


class ClassificationMetrics(nn.Module):
    """Accumulates ``update(logits (B,K), labels (B,))``; ``compute() -> dict``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        tmc = _tm()
        k = num_classes
        self.num_classes = k
        self.top1 = tmc.MulticlassAccuracy(k, top_k=1, average="micro")
        self.top5 = tmc.MulticlassAccuracy(k, top_k=min(5, k), average="micro")
        self.precision = tmc.MulticlassPrecision(k, average=None)
        self.recall = tmc.MulticlassRecall(k, average=None)
        self.f1 = tmc.MulticlassF1Score(k, average=None)
        self.confusion = tmc.MulticlassConfusionMatrix(k)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        logits, target = logits.detach().float(), target.detach().long()
        for m in (self.top1, self.top5, self.precision, self.recall, self.f1, self.confusion):
            m.update(logits, target)

    def compute(self) -> dict:
        cm = self.confusion.compute().long()
        support = cm.sum(1)
        present = support > 0
        p, r, f = self.precision.compute(), self.recall.compute(), self.f1.compute()
        return {
            "n": float(cm.sum()),
            "top1": float(self.top1.compute()),
            "top5": float(self.top5.compute()),
            # Macro averages over classes that occur in the evaluated set.
            "macro_precision": float(p[present].mean()) if present.any() else float("nan"),
            "macro_recall": float(r[present].mean()) if present.any() else float("nan"),
            "macro_f1": float(f[present].mean()) if present.any() else float("nan"),
            "precision": p.tolist(),
            "recall": r.tolist(),
            "f1": f.tolist(),
            "support": support.tolist(),
            "confusion": cm.tolist(),
        }

    def reset(self) -> None:
        for m in (self.top1, self.top5, self.precision, self.recall, self.f1, self.confusion):
            m.reset()


class MultilabelMetrics(nn.Module):
    """Accumulates ``update(logits (B,K), targets (B,K) 0/1)``; ``compute() -> dict``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        tmc = _tm()
        k = num_classes
        self.num_classes = k
        self.ap = tmc.MultilabelAveragePrecision(k, average=None)
        self.f1 = tmc.MultilabelF1Score(k, average=None)
        self.micro_f1 = tmc.MultilabelF1Score(k, average="micro")
        self.exact = tmc.MultilabelExactMatch(k)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        probs, target = logits.detach().float().sigmoid(), target.detach().long()
        for m in (self.ap, self.f1, self.micro_f1, self.exact):
            m.update(probs, target)

    def compute(self) -> dict:
        ap, f1 = self.ap.compute(), self.f1.compute()
        return {
            "n": float(self.exact.total),
            "map": float(ap.nanmean()),
            "macro_f1": float(f1.mean()),
            "micro_f1": float(self.micro_f1.compute()),
            "exact_match": float(self.exact.compute()),
            "ap": ap.tolist(),
            "f1": f1.tolist(),
        }

    def reset(self) -> None:
        for m in (self.ap, self.f1, self.micro_f1, self.exact):
            m.reset()


class SegmentationMetrics(nn.Module):
    """Accumulates a pixel confusion matrix from ``update(logits (B,K,H,W), masks (B,H,W))``.

    torchmetrics' ``MulticlassConfusionMatrix`` with ``ignore_index`` does the counting (and
    the DDP reduction); IoU, accuracies and their means follow from it.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        super().__init__()
        tmc = _tm()
        self.num_classes = num_classes
        self.confusion = tmc.MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.confusion.update(logits.detach().argmax(1), target.detach().long())

    def update_full(self, logits: torch.Tensor, masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Count at each label mask's own resolution: ``logits (B,K,h,w)``, ``masks[i] (H_i,W_i)``.

        As mmsegmentation and PaddleSeg evaluate: each sample's logits are upsampled
        bilinearly to its mask's size before the argmax, so thin structures and borders are
        scored against the annotation as drawn, not against a nearest-resized copy. Returns
        the per-sample predictions ``(H_i, W_i)``."""
        preds = [predict_at(logits[i], tuple(m.shape[-2:])) for i, m in enumerate(masks)]
        for pred, mask in zip(preds, masks):
            self.confusion.update(pred[None], mask.detach().long().to(pred.device)[None])
        return preds

    def compute(self) -> dict:
        cm = self.confusion.compute().double()
        return {"n": float(cm.sum()), **seg_figures(cm)}

    def reset(self) -> None:
        self.confusion.reset()


def predict_at(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Class map ``(H, W)`` of ``logits (K, h, w)`` at ``size``: bilinear upsampling of the
    logits (``align_corners=False``), then the argmax."""
    z = logits.detach().float()
    if tuple(z.shape[-2:]) != tuple(size):
        z = torch.nn.functional.interpolate(z[None], size=size, mode="bilinear", align_corners=False)[0]
    return z.argmax(0)


def seg_figures(cm: torch.Tensor) -> dict:
    """mIoU, per-class IoU, pixel and mean class accuracy from a ``(K, K)`` pixel confusion
    matrix (rows true, columns predicted). Classes absent from both targets and predictions
    have no IoU (``nan`` in the list, left out of the mean)."""
    cm = cm.double()
    tp = cm.diag()
    gt, pred = cm.sum(1), cm.sum(0)
    union = gt + pred - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
    total = cm.sum()
    return {
        "miou": float(iou.nanmean()),
        "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_acc": float(acc.nanmean()),
        "iou": [None if not np.isfinite(v) else float(v) for v in iou.tolist()],
        "acc": [None if not np.isfinite(v) else float(v) for v in acc.tolist()],
    }


def build_metrics(kind: str, num_classes: int, ignore_index: int = 255) -> nn.Module:
    if kind == "classification":
        return ClassificationMetrics(num_classes)
    if kind == "multilabel":
        return MultilabelMetrics(num_classes)
    return SegmentationMetrics(num_classes, ignore_index)


# --------------------------------------------------------------------------- pictures


def confusion_matrix_plot(
    cm: Sequence[Sequence[int]], classes: Sequence[str], out_png: str | Path, *, title: str = ""
) -> Path:
    """Row-normalised confusion matrix as a picture (counts written in the cells when few)."""
    from qualitas.evaluation.plots import _figure, _save

    m = np.asarray(cm, dtype=np.float64)
    k = m.shape[0]
    rows = m.sum(1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    side = min(12.0, 3.0 + 0.45 * k)
    fig = _figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    names = [str(c) for c in classes][:k]
    if k <= 40:
        ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{int(m[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(m) / m.sum() if m.sum() else float("nan")
    ax.set_title(f"{title} top-1 {acc:.3f}".strip())
    fig.tight_layout()
    return _save(fig, out_png)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float ``[0, 1]`` -> ``(H, W, 3)`` uint8."""
    return (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def colorize(
    mask: np.ndarray, palette: Sequence[tuple[int, int, int]], ignore_index: int = 255
) -> np.ndarray:
    """``(H, W)`` class indices -> ``(H, W, 3)`` colours; ignored/unknown pixels black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for k, c in enumerate(palette[:256]):
        if k != ignore_index:
            lut[k] = c
    return lut[mask.astype(np.uint8)]


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    palette: Sequence[tuple[int, int, int]],
    *,
    alpha: float = 0.5,
    ignore_index: int = 255,
) -> np.ndarray:
    """Blend the coloured mask over ``image`` (both ``(H, W, ...)``); class 0 and ignored
    pixels stay unblended when class 0 is black (background)."""
    color = colorize(mask, palette, ignore_index).astype(np.float32)
    keep = (mask == ignore_index) | ((mask == 0) & (np.asarray(palette[0]) == 0).all())
    a = np.where(keep[..., None], 0.0, alpha)
    return (image.astype(np.float32) * (1 - a) + color * a + 0.5).astype(np.uint8)


def draw_caption(image: np.ndarray, lines: Sequence[str], *, scale_to: int = 256) -> PIL.Image.Image:  # noqa: F821
    """The image (upscaled to at least ``scale_to`` px wide, nearest) with text lines on a band."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(image)
    if im.width < scale_to:
        f = scale_to / im.width
        im = im.resize((scale_to, max(1, round(im.height * f))), Image.NEAREST)
    band = 14 * len(lines) + 6
    out = Image.new("RGB", (im.width, im.height + band), (0, 0, 0))
    out.paste(im, (0, 0))
    d = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        d.text((4, im.height + 3 + 14 * i), line, fill=(255, 255, 255))
    return out


def save_picture(picture: PIL.Image.Image, path: str | Path) -> Path:  # noqa: F821
    """Write a PIL image atomically (PNG or JPEG by suffix)."""
    import os

    from qualitas.files import temp_for

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_for(path, suffix=path.suffix)
    try:
        picture.save(tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

"""Prediction with classification and segmentation models, trained or exported
(``qualitas predict``, docs/tasks.md).

:func:`load_task_model` opens what :func:`qualitas.runtime.models.load_model` opens (a run
dir, ``.ckpt``, an export folder or file with its ``model.json``) and checks that the card is
a task model. :class:`TaskModel` sizes inputs as in evaluation (the card's size policy),
runs the graph and reads the logits: top-k classes, per-class sigmoid scores, or a mask at
the input's own resolution (logits resized bilinearly, then argmax).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from qualitas.errors import MediaError, UsageError
from qualitas.export.card import DETECTION_OUTPUTS, TASK_OUTPUTS, ModelCard
from qualitas.export.preprocess import prepare

log = logging.getLogger("qualitas.runtime")


@dataclass
class Prediction:
    """One image's result; ``row`` is its JSON line, ``mask`` the ``(H, W)`` class map."""

    row: dict
    mask: np.ndarray | None = None


class TaskModel:
    """A classification/segmentation model behind its card (PyTorch or any exported format)."""

    def __init__(self, card: ModelCard, runner, *, source: str = "", batch_size: int = 8) -> None:
        if card.output.kind not in TASK_OUTPUTS:
            raise UsageError(
                f"{source or card.name}: a quality model ({card.output.kind} output); use qualitas score --model"
            )
        if card.output.kind in DETECTION_OUTPUTS:
            raise UsageError(
                f"{source or card.name}: a detector; load it with qualitas.runtime.detection.load_detection_model"
            )
        self.card = card
        self.runner = runner
        self.source = source
        self.batch_size = batch_size
        self.kind = card.output.kind
        k = None
        self.classes = list(card.output.labels or [])
        if not self.classes:
            k = int(card.architecture.get("build_kwargs", {}).get("num_classes", 0))
            self.classes = [str(i) for i in range(k)]
        from qualitas.data.vision import default_palette

        self.palette = [tuple(c) for c in (card.output.palette or default_palette(len(self.classes)))]
        self.ignore_index = card.output.ignore_index if card.output.ignore_index is not None else 255

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in ``[0, 1]`` -> logits ``(B, K)`` or ``(B, K, H, W)`` at the input size."""
        h, w = images.shape[-2:]
        (x,) = prepare(self.card, images.float().cpu())
        out = torch.cat([self.runner(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)])
        if self.kind == "segmentation" and tuple(out.shape[-2:]) != (h, w):
            out = F.interpolate(out.float(), size=(int(h), int(w)), mode="bilinear", align_corners=False)
        return out.float()

    def read(self, logits: torch.Tensor, *, topk: int = 5) -> list[Prediction]:
        """Logits of a batch -> one :class:`Prediction` per item."""
        out = []
        for z in logits:
            if self.kind == "classes":
                p = z.softmax(0)
                top = p.topk(min(topk, p.numel()))
                best = int(top.indices[0])
                row = {
                    "label": self.classes[best],
                    "index": best,
                    "score": float(top.values[0]),
                    "top": [[self.classes[int(i)], float(v)] for v, i in zip(top.values, top.indices)],
                }
                out.append(Prediction(row))
            elif self.kind == "multilabel":
                p = z.sigmoid()
                row = {
                    "labels": [self.classes[i] for i in range(len(p)) if p[i] >= 0.5],
                    "scores": {self.classes[i]: float(p[i]) for i in range(len(p))},
                }
                out.append(Prediction(row))
            else:
                mask = z.argmax(0).to(torch.uint8).numpy()
                counts = np.bincount(mask.ravel(), minlength=len(self.classes))
                frac = {self.classes[k]: float(c / mask.size) for k, c in enumerate(counts) if c}
                out.append(Prediction({"fractions": frac}, mask))
        return out

    def caption(self, pred: Prediction) -> list[str]:
        r = pred.row
        if self.kind == "classes":
            return [f"{r['label']} {r['score']:.2f}"] + [f"  {n} {v:.2f}" for n, v in r["top"][1:3]]
        if self.kind == "multilabel":
            return [", ".join(r["labels"]) or "(no label >= 0.5)"]
        top = sorted(r["fractions"].items(), key=lambda kv: -kv[1])[:3]
        return [", ".join(f"{n} {v:.0%}" for n, v in top)]

    def picture(self, image: torch.Tensor, pred: Prediction):
        """The image with its prediction drawn on (label caption, or mask overlay)."""
        from qualitas.evaluation.vision import draw_caption, overlay_mask, to_uint8

        arr = to_uint8(image)
        if pred.mask is not None:
            arr = overlay_mask(arr, pred.mask, self.palette, ignore_index=self.ignore_index)
        return draw_caption(arr, self.caption(pred))


def load_task_model(path: str | os.PathLike, device: str = "cpu", *, batch_size: int = 8) -> TaskModel:
    """A run dir / ``.ckpt`` / export of a classification or segmentation model."""
    from qualitas.runtime.models import load_model

    qm = load_model(path, device, batch_size=batch_size)
    return TaskModel(qm.card, qm.runner, source=qm.source, batch_size=batch_size)


def iter_inputs(
    inputs: Sequence[str | os.PathLike], *, frame_step: int = 1, max_frames: int | None = None
) -> Iterator[tuple[str, int | None, torch.Tensor | Exception]]:
    """``(path, frame index or None, image (3,H,W) | the error)`` for images, folders
    (recursively, sorted) and videos (every ``frame_step``-th frame)."""
    from qualitas.io.image import read_image
    from qualitas.io.media import media_kind
    from qualitas.io.video import iter_frames

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif p.exists():
            files.append(p)
        else:
            yield str(p), None, MediaError(f"{p}: not found")
    for f in files:
        try:
            kind = media_kind(f)
        except Exception as err:  # noqa: BLE001 - unknown types are reported per file
            yield str(f), None, err
            continue
        try:
            if kind == "video":
                for fr in iter_frames(f, frame_step=frame_step, max_frames=max_frames):
                    yield str(f), fr.index, fr.data
            else:
                yield str(f), None, read_image(f).data
        except (MediaError, OSError) as err:
            yield str(f), None, err


def predicted_items(
    inputs: Sequence[str | os.PathLike],
    errors: list[str],
    *,
    frame_step: int = 1,
    max_frames: int | None = None,
    progress: bool = False,
) -> Iterator[tuple[dict, torch.Tensor, str]]:
    """What ``predict`` commands loop over: ``(row, image (3,H,W), name)`` for every readable
    image / frame of ``inputs`` (:func:`iter_inputs`), with a progress bar. ``row`` starts the
    output row (``path``, and ``frame`` for videos); ``name`` is a file stem for its pictures,
    unique in this run. Unreadable inputs are appended to ``errors`` (one line each) and
    skipped, so a bad file does not stop the rest."""
    from qualitas.runtime.progress import Progress

    used: set[str] = set()
    with Progress(progress).frames(None, "predict") as bar:
        for path, frame, image in iter_inputs(inputs, frame_step=frame_step, max_frames=max_frames):
            bar.update(1)
            if isinstance(image, Exception):
                errors.append(f"{path}: {image}")
                continue
            row: dict = {"path": path, **({"frame": frame} if frame is not None else {})}
            yield row, image, _unique(Path(path).stem + (f"_f{frame:06d}" if frame is not None else ""), used)


def predict_paths(
    model: TaskModel,
    inputs: Sequence[str | os.PathLike],
    *,
    show_dir: str | Path | None = None,
    mask_dir: str | Path | None = None,
    topk: int = 5,
    frame_step: int = 1,
    max_frames: int | None = None,
    progress: bool = False,
) -> tuple[list[dict], list[str]]:
    """Predict every image / frame; returns ``(rows, errors)`` (a bad file does not stop the rest)."""
    from qualitas.evaluation.vision import save_picture

    rows: list[dict] = []
    errors: list[str] = []
    items = predicted_items(inputs, errors, frame_step=frame_step, max_frames=max_frames, progress=progress)
    for row, image, name in items:
        (pred,) = model.read(model.logits(image[None]), topk=topk)
        row.update(pred.row)
        if mask_dir is not None and pred.mask is not None:
            from PIL import Image

            mp = Path(mask_dir) / f"{name}.png"
            mp.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pred.mask, mode="L").save(mp)
            row["mask"] = str(mp)
        if show_dir is not None:
            save_picture(model.picture(image, pred), Path(show_dir) / f"{name}.png")
        rows.append(row)
    return rows, errors


def _unique(name: str, used: set[str]) -> str:
    out, n = name, 1
    while out in used:
        out, n = f"{name}-{n}", n + 1
    used.add(out)
    return out

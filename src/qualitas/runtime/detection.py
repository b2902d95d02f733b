"""Prediction with detectors and keypoint models, trained or exported (``qualitas predict``,
docs/tasks.md).

:func:`load_detection_model` opens a run dir / ``.ckpt`` (eager PyTorch through
:class:`qualitas.models.detection.DetectorGraph`) or an export folder / ``.onnx`` / ``.xml``
with its ``model.json`` (:class:`qualitas.export.detection.DetectionRunner`). Both are fed
the same way: each image is fitted to the detector's working size first
(:func:`qualitas.models.detection.fit_to_detector`, so the graph's own resize has scale 1
and eager and exported results agree), and boxes / keypoints are mapped back to the
image's own pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from qualitas.errors import UsageError
from qualitas.export.card import CARD_FILE, DETECTION_OUTPUTS, ModelCard, read_card


class DetectionModel:
    """A detector behind its card: ``detect(image (3, H, W)) -> dict`` in the image's pixels."""

    def __init__(self, card: ModelCard, runner, *, source: str = "") -> None:
        if card.output.kind not in DETECTION_OUTPUTS:
            raise UsageError(f"{source or card.name}: not a detector ({card.output.kind} output)")
        self.card = card
        self.runner = runner
        self.source = source
        kw = card.architecture.get("build_kwargs", {})
        self.min_size = int(kw.get("min_size") or 320)
        self.max_size = int(kw.get("max_size") or 512)
        self.classes = list(card.output.labels or ())
        self.skeleton = card.output.skeleton or ()
        self.keypoint_names = list(card.output.keypoint_names or ())

    @torch.no_grad()
    def detect(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        from qualitas.models.detection import fit_to_detector, rescale_detections, split_batch

        fitted, factors = fit_to_detector(image.float().cpu(), self.min_size, self.max_size)
        out = rescale_detections(split_batch(tuple(self.runner(fitted[None])), 1)[0], factors)
        names = ("boxes", "scores", "labels", "keypoints")
        return {n: t for n, t in zip(names, out)}

    def name_of(self, label: int) -> str:
        return self.classes[label - 1] if 0 < label <= len(self.classes) else str(label)

    def row(self, det: dict[str, torch.Tensor], score_min: float = 0.0) -> dict:
        """JSON-ready detections with ``score >= score_min``."""
        items = []
        kps = det.get("keypoints")
        for i, (b, s, lab) in enumerate(
            zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())
        ):
            if s < score_min:
                continue
            item = {"label": self.name_of(int(lab)), "class": int(lab), "score": round(float(s), 5),
                    "box": [round(float(v), 2) for v in b]}  # fmt: skip
            if kps is not None:
                item["keypoints"] = [[round(float(x), 2), round(float(y), 2)] for x, y, *_ in kps[i].tolist()]
            items.append(item)
        return {"detections": items}

    def picture(self, image: torch.Tensor, det: dict[str, torch.Tensor], score_min: float = 0.0):
        from qualitas.evaluation.detection import draw_detections

        keep = det["scores"] >= score_min
        captions = [
            f"{self.name_of(int(v))} {float(s):.2f}" for v, s in zip(det["labels"][keep], det["scores"][keep])
        ]
        kps = det.get("keypoints")
        return draw_detections(
            image,
            det["boxes"][keep],
            captions,
            keypoints=kps[keep] if kps is not None else None,
            skeleton=self.skeleton,
            labels=det["labels"][keep].tolist(),
        )


def _card_path(path: Path) -> Path | None:
    if path.is_dir() and (path / CARD_FILE).is_file():
        return path / CARD_FILE
    if path.is_file() and path.suffix.lower() in (".onnx", ".xml") and (path.parent / CARD_FILE).is_file():
        return path.parent / CARD_FILE
    return None


def is_detection_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` (run dir, ``.ckpt``, export folder or file) holds a detector."""
    p = Path(path)
    card = _card_path(p)
    if card is not None:
        return read_card(card).output.kind in DETECTION_OUTPUTS
    if p.suffix.lower() in (".onnx", ".xml", ".pt", ".pt2"):
        return False
    from qualitas.models.checkpoint import read_checkpoint, resolve_checkpoint

    try:
        info = read_checkpoint(resolve_checkpoint(p)).get("qualitas") or {}
    except UsageError:
        return False
    return (info.get("spec") or {}).get("output") in DETECTION_OUTPUTS


def load_detection_model(path: str | os.PathLike, device: str = "cpu") -> DetectionModel:
    """A trained (run dir / ``.ckpt``) or exported (folder / ``.onnx`` / ``.xml``) detector."""
    p = Path(path)
    card_file = _card_path(p)
    if card_file is not None:
        from qualitas.export.detection import DetectionRunner

        card = read_card(card_file)
        file = p if p.is_file() else p / str(card.file)
        return DetectionModel(card, DetectionRunner(file, card, device), source=str(p))
    from qualitas.models.checkpoint import load_run
    from qualitas.models.detection import DetectorGraph

    model, info = load_run(p, device=device)
    card = ModelCard.from_training(info.spec, info)
    if card.output.kind not in DETECTION_OUTPUTS:
        raise UsageError(f"{p}: not a detector run")
    graph = DetectorGraph(model)

    def runner(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t.cpu() for t in graph(x.to(device)))

    return DetectionModel(card, runner, source=str(p))


def predict_detection_paths(
    model: DetectionModel,
    inputs: Sequence[str | os.PathLike],
    *,
    show_dir: str | Path | None = None,
    score_min: float = 0.3,
    frame_step: int = 1,
    max_frames: int | None = None,
    progress: bool = False,
) -> tuple[list[dict], list[str]]:
    """Detect in every image / frame; ``(rows, errors)`` (a bad file does not stop the rest)."""
    from qualitas.evaluation.vision import save_picture
    from qualitas.runtime.vision import predicted_items

    rows: list[dict] = []
    errors: list[str] = []
    items = predicted_items(inputs, errors, frame_step=frame_step, max_frames=max_frames, progress=progress)
    for row, image, name in items:
        det = model.detect(image)
        row.update(model.row(det, score_min))
        if show_dir is not None:
            from PIL import Image

            save_picture(
                Image.fromarray(model.picture(image, det, score_min)), Path(show_dir) / f"{name}.png"
            )
        rows.append(row)
    return rows, errors

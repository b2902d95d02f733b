"""Analytics objectives: differentiable ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``.

Built in (``ANALYTICS``):

* ``mtcnn`` — the MTCNN face detector (Zhang et al. 2016) with the pretrained P/R/O-Net
  weights shipped inside the ``facenet-pytorch`` wheel (read locally with
  ``weights_only=True``; nothing is downloaded). Objective: the summed O-Net face
  confidence of the detections whose confidence is at least ``threshold``. Detection
  (pyramid, NMS, box regression) runs without gradients; the confidences are then
  recomputed differentiably from 48x48 area-resampled crops of the input, exactly as
  MTCNN's third stage does, so ``d objective / d pixels`` is defined. ``boxes=reference``
  is the smooth variant: the boxes are detected once on a reference frame (the enhanced
  one) and any frame is scored by the O-Net at those fixed boxes, ungated
  (:func:`reference_objective`), so the objective is a continuous function of the pixels.
* ``quality_model`` — a model trained with ``qualitas train`` (run dir or ``.ckpt``): its
  predicted score (negated when lower is better), per image.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qualitas.errors import DependencyError, UsageError
from qualitas.models.heads import output_to_score
from qualitas.registry import Registry, parse_component

ANALYTICS: Registry[Callable[..., nn.Module]] = Registry("analytics")
"""Builders ``(**kwargs) -> nn.Module`` whose forward returns a ``(B,)`` objective."""


def _facenet_data_dir() -> Path:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            "the mtcnn analytics needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0 (its own pins would replace torch)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class MTCNNObjective(nn.Module):
    """Summed confidence of MTCNN face detections (see module docstring).

    Args:
        threshold: minimum O-Net confidence for a detection to count.
        stage_thresholds: MTCNN's P/R/O-Net candidate thresholds.
        min_face: smallest face searched, in pixels.
        score: ``"prob"`` (softmax confidence, in ``[0, 1]`` per face) or ``"logit"``
            (``log(p / (1 - p))``, which keeps a gradient when ``p`` saturates near 1).
        boxes: ``"detect"`` (run the cascade on every scored frame: finding or losing a
            face, or a shifted box, makes the objective jump) or ``"reference"`` (the
            boxes of a reference frame, see :meth:`with_reference`).
    """

    def __init__(
        self,
        threshold: float = 0.9,
        stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        min_face: int = 20,
        factor: float = 0.709,
        score: str = "prob",
        boxes: str = "detect",
    ) -> None:
        super().__init__()
        try:
            from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
        except ImportError as err:
            raise DependencyError(
                f"the mtcnn analytics needs facenet-pytorch ({err}): pip install --no-deps facenet-pytorch==2.6.0"
            ) from None
        if score not in ("prob", "logit"):
            raise UsageError(f"mtcnn score must be prob or logit, got '{score}'")
        if boxes not in ("detect", "reference"):
            raise UsageError(f"mtcnn boxes must be detect or reference, got '{boxes}'")
        data = _facenet_data_dir()
        self.pnet, self.rnet, self.onet = (
            PNet(pretrained=False),
            RNet(pretrained=False),
            ONet(pretrained=False),
        )
        for net, name in ((self.pnet, "pnet"), (self.rnet, "rnet"), (self.onet, "onet")):
            net.load_state_dict(torch.load(data / f"{name}.pt", map_location="cpu", weights_only=True))
            net.eval().requires_grad_(False)
        self.threshold = threshold
        self.stage_thresholds = list(stage_thresholds)
        self.min_face = min_face
        self.factor = factor
        self.score = score
        self.boxes = boxes

    @torch.no_grad()
    def detect(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Boxes per image: a list of ``(n, 5)`` tensors ``x1, y1, x2, y2, confidence``."""
        from facenet_pytorch.models.utils.detect_face import detect_face

        imgs = (x.detach().clamp(0, 1) * 255).permute(0, 2, 3, 1)
        boxes, _ = detect_face(
            imgs, self.min_face, self.pnet, self.rnet, self.onet, self.stage_thresholds, self.factor, x.device
        )
        out = []
        for b in boxes:
            out.append(torch.from_numpy(np.asarray(b, dtype=np.float32).reshape(-1, 5)))
        return out

    def confidences(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Differentiable O-Net confidence ``(n,)`` of ``boxes (n, 4+)`` on image ``x (3, H, W)``."""
        h, w = x.shape[-2:]
        crops = []
        for x1, y1, x2, y2 in boxes[:, :4].round().long().tolist():
            # MTCNN crops the (clipped) box and area-resamples it to 48x48.
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            crop = x[None, :, y1:y2, x1:x2] * 255
            crops.append(F.interpolate(crop, size=(48, 48), mode="area"))
        if not crops:
            return x.new_zeros(0)
        data = (torch.cat(crops) - 127.5) * 0.0078125
        _, _, prob = self.onet(data)
        p = prob[:, 1]
        if self.score == "logit":
            p = torch.log(prob[:, 1].clamp_min(1e-12)) - torch.log(prob[:, 0].clamp_min(1e-12))
        return p

    def _gate(self, c: torch.Tensor) -> torch.Tensor:
        p = c.detach() if self.score == "prob" else c.detach().sigmoid()
        return p >= self.threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B,)`` summed confidence of the faces found in each image."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise UsageError(f"mtcnn: expected (B,3,H,W) RGB in [0,1], got {tuple(x.shape)}")
        boxes = self.detect(x)
        vals = []
        for i, b in enumerate(boxes):
            c = self.confidences(x[i], b)
            # Confidence of the final (regressed) box, recomputed on this very input; only
            # detections at or above the threshold count (gating is not differentiated).
            vals.append((c * self._gate(c)).sum() + 0.0 * x[i].sum())
        return torch.stack(vals)

    def reference_boxes(self, reference: torch.Tensor) -> torch.Tensor:
        """Boxes ``(n, 4)`` of the detections on ``reference (1, 3, H, W)`` whose confidence
        (recomputed as in :meth:`forward`) reaches ``threshold``."""
        if reference.ndim != 4 or reference.shape[0] != 1 or reference.shape[1] != 3:
            raise UsageError(f"mtcnn reference: expected (1,3,H,W), got {tuple(reference.shape)}")
        b = self.detect(reference)[0]
        with torch.no_grad():
            kept = [row for row in b if len(self.confidences(reference[0], row[None]))]
            b = torch.stack(kept) if kept else b[:0]
            c = self.confidences(reference[0], b)
        return b[self._gate(c), :4] if len(b) else b[:, :4]

    def with_reference(self, reference: torch.Tensor) -> nn.Module:
        """The objective to score frames derived from ``reference (1, 3, H, W)`` (its
        pasted / encoded / cheap versions): ``self`` when ``boxes="detect"``; with
        ``boxes="reference"`` the summed, ungated O-Net score at the reference's boxes."""
        if self.boxes == "detect":
            return self
        return FixedBoxesObjective(self, self.reference_boxes(reference))


class FixedBoxesObjective(nn.Module):
    """``(B, 3, H, W)`` -> ``(B,)``: summed MTCNN O-Net score (``mtcnn.score``) of fixed
    ``boxes (n, 4)``; continuous in the pixels (no detection, no threshold)."""

    def __init__(self, mtcnn: MTCNNObjective, boxes: torch.Tensor) -> None:
        super().__init__()
        self.mtcnn = mtcnn
        self.register_buffer("boxes", boxes.float().reshape(-1, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise UsageError(f"mtcnn: expected (B,3,H,W) RGB in [0,1], got {tuple(x.shape)}")
        return torch.stack([self.mtcnn.confidences(xi, self.boxes).sum() + 0.0 * xi.sum() for xi in x])


def reference_objective(
    objective: Callable[[torch.Tensor], torch.Tensor], reference: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The objective conditioned on ``reference (1, 3, H, W)`` when it supports it
    (``with_reference``, e.g. ``mtcnn:boxes=reference``), else ``objective`` itself."""
    hook = getattr(objective, "with_reference", None)
    return hook(reference) if callable(hook) else objective


class QualityModelObjective(nn.Module):
    """Score of a trained qualitas NR image model (higher = better after the sign flip)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        from qualitas.models.checkpoint import load_run

        model, info = load_run(path)
        if info.full_reference or info.video:
            raise UsageError(f"{path}: quality_model analytics needs a no-reference image model")
        self.model = model.requires_grad_(False)
        self.sign = 1.0 if info.higher_is_better else -1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return self.sign * output_to_score(out, self.model.bins if out.ndim == 2 else None)


@ANALYTICS.register("mtcnn")
def mtcnn(
    *, threshold: float = 0.9, min_face: int = 20, score: str = "prob", boxes: str = "detect"
) -> nn.Module:
    return MTCNNObjective(threshold=threshold, min_face=min_face, score=score, boxes=boxes)


@ANALYTICS.register("quality_model")
def quality_model(*, path: str | None = None) -> nn.Module:
    if not path:
        raise UsageError("analytics quality_model needs path=RUN_DIR_OR_CKPT")
    return QualityModelObjective(path)


def build_analytics(spec: str) -> nn.Module:
    """``"name"`` or ``"name:key=value,..."`` (e.g. ``mtcnn:threshold=0.95,score=logit``)."""
    from qualitas.models.registry import check_kwargs

    name, kwargs = parse_component(spec, "analytics")
    builder = ANALYTICS.get(name)
    check_kwargs(builder, kwargs, f"analytics '{name}'")
    return builder(**kwargs)

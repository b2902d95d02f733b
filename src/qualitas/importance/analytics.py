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
* ``detector`` — a detector trained with ``qualitas train`` (``task: detection`` or
  ``keypoints``; run dir or ``.ckpt``): the summed confidence of its detections of the chosen
  ``classes`` (all by default) whose score reaches ``threshold``. The scores come out of
  torchvision's own eval forward (resize, backbone, head, decoding, NMS), which keeps the
  gradient of each kept score with respect to the pixels. ``boxes=reference`` is the smooth
  variant, as for faces: the boxes (and classes) are detected once on the reference frame,
  and any frame is scored at those fixed boxes, ungated (:class:`FixedBoxesDetectorObjective`).
  Exported ONNX / OpenVINO detectors cannot serve here: the ground truth needs gradients.
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


def _to_logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return torch.log(p) - torch.log1p(-p)


class DetectorObjective(nn.Module):
    """Summed confidence of a torchvision detector's detections of chosen classes.

    Args:
        model: a torchvision detector (``GeneralizedRCNN``, ``RetinaNet``, ``FCOS``, ``SSD``)
            as :func:`qualitas.models.detection.build_detector` makes it; put in eval mode.
        keep: the labels that count (``1..K``; torchvision's 0 is the background), or
            ``None`` for all.
        threshold: minimum score for a detection to count (``boxes=detect``) or to become a
            reference box (``boxes=reference``).
        score: ``"prob"`` (the detector's score in ``[0, 1]``) or ``"logit"``
            (``log(p / (1 - p))``: keeps a gradient where ``p`` saturates).
        boxes: ``"detect"`` or ``"reference"`` (see :meth:`with_reference`).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        keep: list[int] | None = None,
        threshold: float = 0.5,
        score: str = "prob",
        boxes: str = "detect",
    ) -> None:
        super().__init__()
        if score not in ("prob", "logit"):
            raise UsageError(f"detector score must be prob or logit, got '{score}'")
        if boxes not in ("detect", "reference"):
            raise UsageError(f"detector boxes must be detect or reference, got '{boxes}'")
        if not 0.0 <= threshold < 1.0:
            raise UsageError(f"detector threshold must be in [0, 1), got {threshold}")
        self.model = model.eval().requires_grad_(False)
        # Candidates below the model's own score threshold never come out of its forward:
        # lower it to ours so the gating is this objective's, not a training-time setting.
        for holder in (model, getattr(model, "roi_heads", None)):
            if holder is not None and hasattr(holder, "score_thresh"):
                holder.score_thresh = min(float(holder.score_thresh), threshold)
        self.keep = None if keep is None else sorted(set(keep))
        self.threshold = threshold
        self.score = score
        self.boxes = boxes

    def _counts(self, labels: torch.Tensor) -> torch.Tensor:
        if self.keep is None:
            return torch.ones_like(labels, dtype=torch.bool)
        return torch.isin(labels, torch.tensor(self.keep, device=labels.device))

    def _value(self, p: torch.Tensor) -> torch.Tensor:
        return _to_logit(p) if self.score == "logit" else p

    def detect(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """torchvision's detections of ``x (B, 3, H, W)``: ``boxes (n, 4)`` in pixels,
        ``scores (n,)`` (with their gradient), ``labels (n,)``; only the kept classes at or
        above ``threshold``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise UsageError(f"detector: expected (B,3,H,W) RGB in [0,1], got {tuple(x.shape)}")
        out = []
        for det in self.model(list(x)):
            ok = self._counts(det["labels"]) & (det["scores"].detach() >= self.threshold)
            out.append({k: v[ok] for k, v in det.items() if k in ("boxes", "scores", "labels")})
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B,)``: summed score of the counted detections per image."""
        # 0 * sum keeps the graph connected when nothing is detected.
        return torch.stack(
            [self._value(d["scores"]).sum() + 0.0 * xi.sum() for d, xi in zip(self.detect(x), x)]
        )

    def with_reference(self, reference: torch.Tensor) -> nn.Module:
        """``self`` for ``boxes=detect``; for ``boxes=reference`` the ungated score at the
        boxes and classes detected on ``reference (1, 3, H, W)``."""
        if self.boxes == "detect":
            return self
        if reference.ndim != 4 or reference.shape[0] != 1:
            raise UsageError(f"detector reference: expected (1,3,H,W), got {tuple(reference.shape)}")
        with torch.no_grad():
            det = self.detect(reference)[0]
        return FixedBoxesDetectorObjective(self.model, det["boxes"], det["labels"], score=self.score)


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU ``(n, m)`` of ``a (n, 4)`` and ``b (m, 4)`` (xyxy) that stays finite for the
    degenerate boxes an untrained regression decodes (``torchvision.ops.box_iou`` divides
    0 by 0 there)."""
    wh = (
        torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])
    ).clamp_min(0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2:] - a[:, :2]).clamp_min(0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp_min(0).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp_min(1e-6)


class FixedBoxesDetectorObjective(nn.Module):
    """``(B, 3, H, W)`` -> ``(B,)``: the detector's summed score for fixed ``boxes (n, 4)``
    (pixels of the input) and their ``labels (n,)``, continuous in the pixels (no NMS, no
    threshold).

    Two-stage detectors (Faster/Keypoint R-CNN) classify the fixed boxes themselves: RoI
    pooling at each box and the box head's softmax for its label — the analogue of MTCNN's
    O-Net at fixed boxes. Dense detectors (RetinaNet, FCOS, SSD) score every location; a
    box's score is the maximum over locations of the location's score for the label times
    the IoU of its decoded box with the fixed box (continuous, and it follows the box's
    own regression). Written here because torchvision has no "score these boxes" call.
    """

    def __init__(
        self, model: nn.Module, boxes: torch.Tensor, labels: torch.Tensor, *, score: str = "prob"
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("boxes", boxes.detach().float().reshape(-1, 4))
        self.register_buffer("labels", labels.detach().long().reshape(-1))
        self.score = score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.models.detection import FCOS, RetinaNet
        from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
        from torchvision.models.detection.ssd import SSD

        if x.ndim != 4 or x.shape[1] != 3:
            raise UsageError(f"detector: expected (B,3,H,W) RGB in [0,1], got {tuple(x.shape)}")
        if not len(self.boxes):
            return 0.0 * x.sum(dim=(1, 2, 3))
        m = self.model
        images, _ = m.transform(list(x))
        # The transform resizes: fixed boxes move with it (per image, as torchvision does).
        scaled = []
        for (h, w), xi in zip(images.image_sizes, x):
            sy, sx = h / xi.shape[-2], w / xi.shape[-1]
            scaled.append(self.boxes * self.boxes.new_tensor([sx, sy, sx, sy]))
        features = m.backbone(images.tensors)
        if isinstance(features, torch.Tensor):
            features = {"0": features}
        if isinstance(m, GeneralizedRCNN):
            pooled = m.roi_heads.box_roi_pool(features, scaled, images.image_sizes)
            logits, _ = m.roi_heads.box_predictor(m.roi_heads.box_head(pooled))
            p = logits.softmax(-1).reshape(len(x), len(self.boxes), -1)
            p = p.gather(2, self.labels.expand(len(x), -1)[..., None])[..., 0]
        elif isinstance(m, (RetinaNet, FCOS, SSD)):
            feats = list(features.values())
            head = m.head(feats)
            anchors = m.anchor_generator(images, feats)
            rows = []
            for i in range(len(x)):
                cls = head["cls_logits"][i][:, self.labels]  # (locations, n)
                if isinstance(m, FCOS):
                    q = (cls.sigmoid() * head["bbox_ctrness"][i].sigmoid()).sqrt()
                    decoded = m.box_coder.decode(head["bbox_regression"][i], anchors[i])
                elif isinstance(m, SSD):
                    q = head["cls_logits"][i].softmax(-1)[:, self.labels]
                    decoded = m.box_coder.decode_single(head["bbox_regression"][i], anchors[i])
                else:
                    q = cls.sigmoid()
                    decoded = m.box_coder.decode_single(head["bbox_regression"][i], anchors[i])
                rows.append((q * _box_iou(decoded, scaled[i])).amax(0))
            p = torch.stack(rows)
        else:
            raise UsageError(f"detector analytics: unsupported model {type(m).__name__}")
        value = _to_logit(p) if self.score == "logit" else p
        return value.sum(1)


@ANALYTICS.register("detector")
def detector(
    *,
    run: str | None = None,
    classes: str | None = None,
    threshold: float = 0.5,
    score: str = "prob",
    boxes: str = "detect",
) -> nn.Module:
    """``detector:run=RUN[,classes=person+car][,threshold=0.5][,score=logit][,boxes=reference]``."""
    if not run:
        raise UsageError("analytics detector needs run=RUN_DIR_OR_CKPT (a qualitas detection run)")
    from qualitas.models.detection import load_detector

    model, _, names = load_detector(run)
    keep = None
    if classes is not None:
        wanted = [c for c in str(classes).split("+") if c]
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise UsageError(
                f"detector classes {', '.join(unknown)} not in {run} (its classes: {', '.join(names)})"
            )
        keep = [names.index(c) + 1 for c in wanted]
    return DetectorObjective(model, keep=keep, threshold=float(threshold), score=score, boxes=boxes)


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

"""Object detectors and keypoint models: torchvision's detection families on a timm backbone.

torchvision builds the detectors (Faster R-CNN, RetinaNet, FCOS, SSDlite, Keypoint R-CNN:
anchors, heads, losses, box decoding and NMS); timm builds the backbone, with the offline
ImageNet weights of :mod:`qualitas.models.pretrained`. The one piece written here is the
adapter between them, :class:`TimmFPN` (timm's ``features_only`` maps -> torchvision's
``FeaturePyramidNetwork``), because torchvision's ``BackboneWithFPN`` only takes modules whose
stages are named children (ResNet-style), and timm's EfficientNets are not; and
:class:`TimmSSDFeatures`, the same for SSD's multi-scale maps.

Every model takes ``list[(3, H, W)]`` images in ``[0, 1]`` (sizes may differ) and normalises
them itself with the backbone's mean/std; in training mode also ``list[dict(boxes (N, 4)
xyxy pixels, labels (N,) int64 1..K[, keypoints (N, K, 3)])]`` and returns a dict of losses;
in eval mode it returns ``list[dict(boxes, labels, scores[, keypoints, keypoints_scores])]``.
Class ids are 1..K with 0 the background, so ``num_classes = K + 1`` for every family.

The registered model ``detector`` (``task: detection | keypoints``, docs/tasks.md) is
:func:`build_detector` behind the model registry: it carries a :class:`ModelSpec` card
(``output`` ``detection`` or ``keypoints``) so training runs, checkpoints and exports treat
it like every other model; :func:`load_detector` reads a trained one back.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from qualitas.errors import ConfigError, UsageError
from qualitas.models.registry import MODELS, card_kwargs
from qualitas.models.spec import ModelSpec
from qualitas.registry import did_you_mean

DETECTOR_FAMILIES = ("faster_rcnn", "retinanet", "fcos", "ssdlite", "keypoint_rcnn")


def _timm_features(
    name: str, pretrained: bool, pretrained_path: str | None
) -> tuple[nn.Module, tuple, tuple]:
    """timm ``features_only`` network with offline weights, and the mean/std they expect."""
    from qualitas.models.backbones import TimmBackbone

    # TimmBackbone resolves the offline weights and loads them into a features_only network
    # (pool="stats"); the pooled statistics on top of it are not used here.
    tb = TimmBackbone(name, pretrained=pretrained, pretrained_path=pretrained_path, pool="stats")
    return tb.net, tb.mean, tb.std


class TimmFPN(nn.Module):
    """timm feature maps -> FPN: ``(B, 3, H, W) -> OrderedDict[str, (B, out_channels, h, w)]``.

    ``levels`` are indices into the backbone's stages (timm's ``feature_info``; the default,
    the last three, are strides 8, 16, 32 on EfficientNet). ``extra`` adds torchvision's
    extra levels: ``"pool"`` (P6 by max-pooling, Faster R-CNN) or ``"p6p7"`` (RetinaNet, FCOS).
    """

    def __init__(
        self,
        features: nn.Module,
        *,
        levels: tuple[int, ...] = (-3, -2, -1),
        out_channels: int = 128,
        extra: str | None = "pool",
    ) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

        self.body = features
        channels = list(features.feature_info.channels())
        n = len(channels)
        self.levels = tuple(i % n for i in levels)
        in_list = [channels[i] for i in self.levels]
        block = {None: None, "pool": LastLevelMaxPool(), "p6p7": LastLevelP6P7(out_channels, out_channels)}
        if extra not in block:
            raise ConfigError(f"unknown FPN extra level {extra!r}: none, pool or p6p7")
        self.fpn = FeaturePyramidNetwork(in_list, out_channels, extra_blocks=block[extra])
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(x)
        return self.fpn(OrderedDict((str(k), maps[i]) for k, i in enumerate(self.levels)))


class TimmSSDFeatures(nn.Module):
    """The last two timm stages plus ``extra`` stride-2 blocks: SSDlite's multi-scale maps."""

    def __init__(self, features: nn.Module, *, extra: int = 2, width: int = 128) -> None:
        super().__init__()
        self.body = features
        channels = list(features.feature_info.channels())
        self.out_channels = [channels[-2], channels[-1]] + [width] * extra
        blocks = []
        c = channels[-1]
        for _ in range(extra):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c, c, 3, stride=2, padding=1, groups=c, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU6(inplace=True),
                    nn.Conv2d(c, width, 1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU6(inplace=True),
                )
            )
            c = width
        self.extra = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(x)
        out = [maps[-2], maps[-1]]
        for b in self.extra:
            out.append(b(out[-1]))
        return OrderedDict((str(i), m) for i, m in enumerate(out))


@dataclass(frozen=True)
class DetectorSpec:
    """What a detector was built with (saved beside its weights, read back by ``build_detector``)."""

    family: str
    backbone: str
    num_classes: int
    min_size: int = 320
    max_size: int = 512
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    fpn_channels: int = 128
    num_keypoints: int = 0
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 100
    proposals: int = 1000
    """Faster/Keypoint R-CNN: RPN proposals kept per image at test time (twice as many in
    training), before and after the RPN's NMS (torchvision's defaults: 1000 / 2000)."""
    roi_samples: int = 512
    """Faster/Keypoint R-CNN: proposals sampled per image for the box head's loss."""
    keypoint_channels: int = 512
    keypoint_layers: int = 8
    """Keypoint R-CNN's head: ``keypoint_layers`` 3x3 convolutions of ``keypoint_channels``
    (torchvision's default 8 x 512 costs ~20x the rest of a small detector on a CPU)."""


def build_detector(
    spec: DetectorSpec, *, pretrained: bool = False, pretrained_path: str | None = None
) -> nn.Module:
    """A torchvision detector of ``spec.family`` on the timm backbone ``spec.backbone``.

    ``anchor_sizes`` are one size per FPN level (the model's levels: 3 timm stages plus the
    extra level(s) — 4 for Faster R-CNN / Keypoint R-CNN, 5 for RetinaNet; FCOS is anchor-free
    and uses none; SSDlite takes them as its min/max box scales).
    """
    from torchvision.models import detection as tvd
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator

    if spec.family not in DETECTOR_FAMILIES:
        raise ConfigError(
            f"unknown detector family {spec.family!r}{did_you_mean(spec.family, DETECTOR_FAMILIES)}; "
            f"choose one of: {', '.join(DETECTOR_FAMILIES)}"
        )
    if spec.num_classes < 2:
        raise ConfigError(
            f"num_classes must count the background too (classes + 1 >= 2), got {spec.num_classes}"
        )
    if spec.family == "keypoint_rcnn" and spec.num_keypoints < 1:
        raise ConfigError("keypoint_rcnn needs num_keypoints >= 1")
    features, mean, std = _timm_features(spec.backbone, pretrained, pretrained_path)
    common = {
        "min_size": spec.min_size,
        "max_size": spec.max_size,
        "image_mean": list(mean),
        "image_std": list(std),
    }
    ratios = tuple(float(r) for r in spec.aspect_ratios)

    def anchors(levels: int) -> AnchorGenerator:
        sizes = tuple(spec.anchor_sizes)
        if len(sizes) != levels:
            raise ConfigError(f"{spec.family}: give {levels} anchor_sizes (one per level), got {len(sizes)}")
        return AnchorGenerator(tuple((s,) for s in sizes), (ratios,) * levels)

    p = int(spec.proposals)
    rcnn = {
        "box_score_thresh": spec.score_thresh,
        "box_nms_thresh": spec.nms_thresh,
        "box_detections_per_img": spec.detections_per_img,
        "rpn_pre_nms_top_n_train": 2 * p,
        "rpn_pre_nms_top_n_test": p,
        "rpn_post_nms_top_n_train": 2 * p,
        "rpn_post_nms_top_n_test": p,
        "box_batch_size_per_image": int(spec.roi_samples),
    }
    dense = {
        "score_thresh": spec.score_thresh,
        "nms_thresh": spec.nms_thresh,
        "detections_per_img": spec.detections_per_img,
    }
    if spec.family in ("faster_rcnn", "keypoint_rcnn"):
        backbone = TimmFPN(features, out_channels=spec.fpn_channels, extra="pool")
        kw = dict(rpn_anchor_generator=anchors(4), **rcnn, **common)
        if spec.family == "faster_rcnn":
            return tvd.FasterRCNN(backbone, num_classes=spec.num_classes, **kw)
        from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor

        c = int(spec.keypoint_channels)
        return tvd.KeypointRCNN(
            backbone,
            num_classes=spec.num_classes,
            keypoint_head=KeypointRCNNHeads(spec.fpn_channels, [c] * int(spec.keypoint_layers)),
            keypoint_predictor=KeypointRCNNPredictor(c, spec.num_keypoints),
            **kw,
        )
    if spec.family == "retinanet":
        backbone = TimmFPN(features, out_channels=spec.fpn_channels, extra="p6p7")
        return tvd.RetinaNet(
            backbone, num_classes=spec.num_classes, anchor_generator=anchors(5), **dense, **common
        )
    if spec.family == "fcos":
        backbone = TimmFPN(features, out_channels=spec.fpn_channels, extra="p6p7")
        return tvd.FCOS(backbone, num_classes=spec.num_classes, **dense, **common)
    # ssdlite: square input of min_size; box scales spread between the smallest and largest anchor
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead

    backbone = TimmSSDFeatures(features, width=spec.fpn_channels)
    n_maps = len(backbone.out_channels)
    size = spec.min_size
    lo, hi = min(spec.anchor_sizes) / size, max(spec.anchor_sizes) / size
    boxes = DefaultBoxGenerator([[2, 3]] * n_maps, min_ratio=lo, max_ratio=hi)
    head = SSDLiteHead(
        backbone.out_channels, boxes.num_anchors_per_location(), spec.num_classes, nn.BatchNorm2d
    )
    return SSD(
        backbone,
        boxes,
        (size, size),
        spec.num_classes,
        image_mean=list(mean),
        image_std=list(std),
        head=head,
        **dense,
    )


DEFAULT_ANCHORS = {
    "faster_rcnn": (16, 32, 64, 128),
    "keypoint_rcnn": (16, 32, 64, 128),
    "retinanet": (16, 32, 64, 128, 256),
    "fcos": (16, 32, 64, 128),
    "ssdlite": (16, 32, 64, 128),
}
"""One anchor size per pyramid level of each family (FCOS is anchor-free and ignores them)."""


@MODELS.register("detector")
def detector(
    *,
    arch: str = "fcos",
    backbone: str = "tf_efficientnet_lite0",
    num_classes: int = 2,
    min_size: int = 320,
    max_size: int = 512,
    anchor_sizes: list[int] | None = None,
    aspect_ratios: list[float] | None = None,
    fpn_channels: int = 128,
    num_keypoints: int = 0,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    proposals: int = 1000,
    roi_samples: int = 512,
    keypoint_channels: int = 512,
    keypoint_layers: int = 8,
    pretrained: bool = False,
    pretrained_path: str | None = None,
) -> nn.Module:
    """A torchvision detector (``arch``: one of :data:`DETECTOR_FAMILIES`) on a timm backbone.

    ``num_classes`` counts the background (K object classes -> K + 1). The returned module is
    torchvision's own model with a ``spec`` card (``output`` ``keypoints`` for
    ``keypoint_rcnn``, else ``detection``) and its :class:`DetectorSpec` as ``detector_spec``.
    """
    kwargs = dict(locals())
    if arch not in DETECTOR_FAMILIES:
        raise ConfigError(
            f"unknown model.arch {arch!r}{did_you_mean(arch, DETECTOR_FAMILIES)}; "
            f"choose one of: {', '.join(DETECTOR_FAMILIES)}"
        )
    if arch in ("fcos", "retinanet") and (fpn_channels < 64 or fpn_channels % 32):
        # Their heads use GroupNorm(32 groups): 32 channels leave one value per group on the
        # 1x1 top level of small inputs, which GroupNorm refuses.
        raise ConfigError(
            f"model.fpn_channels must be a multiple of 32 and >= 64 for {arch}, got {fpn_channels}"
        )
    spec = DetectorSpec(
        family=arch,
        backbone=backbone,
        num_classes=int(num_classes),
        min_size=int(min_size),
        max_size=int(max_size),
        anchor_sizes=tuple(int(a) for a in (anchor_sizes or DEFAULT_ANCHORS[arch])),
        aspect_ratios=tuple(float(a) for a in (aspect_ratios or (0.5, 1.0, 2.0))),
        fpn_channels=int(fpn_channels),
        num_keypoints=int(num_keypoints),
        score_thresh=float(score_thresh),
        nms_thresh=float(nms_thresh),
        detections_per_img=int(detections_per_img),
        proposals=int(proposals),
        roi_samples=int(roi_samples),
        keypoint_channels=int(keypoint_channels),
        keypoint_layers=int(keypoint_layers),
    )
    model = build_detector(spec, pretrained=pretrained, pretrained_path=pretrained_path)
    mean, std = model.transform.image_mean, model.transform.image_std
    model.spec = ModelSpec(  # type: ignore[assignment]
        arch="detector",
        backbone=backbone,
        full_reference=False,
        video=False,
        output="keypoints" if arch == "keypoint_rcnn" else "detection",
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        build_kwargs=card_kwargs(kwargs),
    )
    model.detector_spec = spec  # type: ignore[assignment]
    model.bins = None  # type: ignore[assignment]
    return model


def spec_to_dict(spec: DetectorSpec) -> dict:
    """Plain data (lists, not tuples) for checkpoints and cards."""
    d = dataclasses.asdict(spec)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def spec_from_dict(d: dict) -> DetectorSpec:
    known = {f.name for f in dataclasses.fields(DetectorSpec)}
    kw = {k: v for k, v in d.items() if k in known}
    for key in ("anchor_sizes", "aspect_ratios"):
        if key in kw:
            kw[key] = tuple(kw[key])
    return DetectorSpec(**kw)


def load_detector(path: str | os.PathLike) -> tuple[nn.Module, DetectorSpec, list[str]]:
    """A trained detector from a run dir (its best checkpoint) or a ``.ckpt``.

    Returns the torchvision model in eval mode on the CPU (``model(list[(3, H, W)] in
    [0, 1]) -> list[dict(boxes, labels, scores[, keypoints])]``), its :class:`DetectorSpec`
    and the class names without the background: label ``i + 1`` is ``classes[i]``.
    """
    from qualitas.models.checkpoint import load_run, read_checkpoint, resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    stored_info = read_checkpoint(ckpt).get("qualitas") or {}
    arch = (stored_info.get("spec") or {}).get("arch")
    if arch != "detector":
        task = stored_info.get("task", "quality")
        raise UsageError(f"{path}: not a detector run (model {arch!r}, task {task})")
    model, info = load_run(ckpt, device="cpu")
    stored = info.extra.get("detector")
    spec = spec_from_dict(stored) if isinstance(stored, dict) else model.detector_spec
    classes = [str(c) for c in info.extra.get("classes") or ()]
    if len(classes) != spec.num_classes - 1:
        classes = [f"class{i + 1}" for i in range(spec.num_classes - 1)]
    return model.eval(), spec, classes


class DetectorGraph(nn.Module):
    """A batch in, decoded detections out: the form a detector is exported and served in.

    ``(B, 3, H, W)`` in ``[0, 1]`` -> ``boxes (N, 4)`` xyxy pixels of the input, ``scores (N,)``,
    ``labels (N,)`` int64 1..K [, ``keypoints (N, P, 3)`` x, y, visibility], ``batch_index
    (N,)`` int64 (the image each detection belongs to), the detections of all images
    concatenated in batch order, with the model's own resizing, decoding, score threshold and
    NMS inside. :meth:`detect_one` is the same for one ``(1, 3, H, W)`` image without the
    index; :func:`split_batch` cuts the outputs back into per-image tuples.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.eval()  # torchvision detectors return losses, not detections, in training mode
        self.keypoints = getattr(detector, "detector_spec", None) is not None and (
            detector.detector_spec.family == "keypoint_rcnn"
        )

    def detect_one(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.detector([image[0]])[0]
        got = (out["boxes"], out["scores"], out["labels"])
        return got + (out["keypoints"],) if self.keypoints else got

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = self.detector(list(images))
        names = ("boxes", "scores", "labels") + (("keypoints",) if self.keypoints else ())
        cat = tuple(torch.cat([o[n] for o in outs]) for n in names)
        index = torch.cat([torch.full_like(o["labels"], i) for i, o in enumerate(outs)])
        return (*cat, index)


def split_batch(out: tuple[torch.Tensor, ...], batch: int) -> list[tuple[torch.Tensor, ...]]:
    """:class:`DetectorGraph` outputs (``batch_index`` last) -> one tuple per image, without
    the index."""
    index = out[-1]
    return [tuple(t[index == i] for t in out[:-1]) for i in range(batch)]


def working_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """The size torchvision's detector transform resizes an image to (short side
    ``min_size``, long side at most ``max_size``), rounded to the nearest pixel."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def fit_to_detector(
    image: torch.Tensor, min_size: int, max_size: int
) -> tuple[torch.Tensor, tuple[float, float]]:
    """``(3, H, W)`` -> the image resized (bilinear) to :func:`working_size` and the factors
    ``(sy, sx)`` that map its coordinates back to the original (``x * sx``, ``y * sy``).

    Fed such an image, a detector's own resize has scale exactly 1. That matters for exports:
    the traced resize computes its scale in float32 where eager PyTorch uses float64, so for
    some sizes (e.g. 256x385 at max_size 96) the two resize to sizes one pixel apart.
    """
    import torch.nn.functional as F

    h, w = (int(v) for v in image.shape[-2:])
    nh, nw = working_size(h, w, min_size, max_size)
    if (nh, nw) == (h, w):
        return image, (1.0, 1.0)
    out = F.interpolate(image[None].float(), size=(nh, nw), mode="bilinear", align_corners=False)[0]
    return out, (h / nh, w / nw)


def rescale_detections(
    out: tuple[torch.Tensor, ...], factors: tuple[float, float]
) -> tuple[torch.Tensor, ...]:
    """Boxes (and keypoints) of a fitted image back in the original image's pixels."""
    sy, sx = factors
    if (sy, sx) == (1.0, 1.0):
        return out
    boxes = out[0] * torch.tensor([sx, sy, sx, sy], dtype=out[0].dtype)
    rest = list(out[1:])
    if len(rest) > 2:
        kp = rest[2].clone()
        kp[..., 0] *= sx
        kp[..., 1] *= sy
        rest[2] = kp
    return (boxes, *rest)

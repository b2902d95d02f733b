"""The deployment card ``model.json`` written beside every exported model.

The card is everything a runtime needs to score with the exported file and nothing from
training: what the model takes (full/no reference, image/clip, channels, layout, value
range, normalisation and whether the graph applies it, the input-size policy and which
axes are dynamic), how videos are sampled, what it returns (score or distribution over
bins, how to map it to MOS units, range and direction), what it was trained on and its
evaluation figures, and which file in which format holds the model.

``ModelCard.from_training(spec, info)`` builds it from a training checkpoint's model card
(:class:`qualitas.models.ModelSpec`) and run info (``qualitas.training.run.load_trained``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qualitas.errors import UsageError
from qualitas.version import __version__

if TYPE_CHECKING:
    from qualitas.models.checkpoint import RunInfo

CARD_FILE = "model.json"
CARD_VERSION = 1
SIZE_MODES = ("none", "resize", "crop", "pad", "fragments")


TASK_OUTPUTS = ("classes", "multilabel", "segmentation", "detection", "keypoints")
"""Output kinds of the vision tasks (docs/tasks.md): ``(B, K)`` class logits (softmax, or a
sigmoid per class for ``multilabel``), ``(B, K, H, W)`` pixel logits, and detectors' decoded
detections (``boxes (N, 4)``, ``scores (N,)``, ``labels (N,)`` [, ``keypoints (N, P, 3)``]
of one image)."""
DETECTION_OUTPUTS = ("detection", "keypoints")
OUTPUT_KINDS = ("score", "distribution", *TASK_OUTPUTS)

MIN_INPUT_SIDE = 32
"""Default minimum height/width of a model's input (see :meth:`ModelCard.min_side`)."""


@dataclass(frozen=True)
class InputCard:
    """What the exported graph takes.

    Images are ``(B, 3, H, W)`` (``NCHW``), clips ``(B, T, 3, H, W)`` (``NTCHW``), RGB
    ``float32`` in ``value_range``. ``normalized_inside``: the graph itself applies
    ``(x - mean) / std``, so callers feed ``[0, 1]`` values, never normalised ones.
    """

    names: tuple[str, ...]
    """Graph input names: ``("dist",)`` or ``("dist", "ref")``."""
    layout: str
    channels: int = 3
    color: str = "RGB"
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    normalized_inside: bool = True
    size_policy: dict[str, Any] = field(default_factory=lambda: {"mode": "none"})
    """Evaluation sizing (centred variant): ``mode`` none|resize|crop|pad|fragments, ``size``
    ``[H, W]``, ``resize_short``, ``grid``, ``patch`` (see ``qualitas.data.transforms``)."""
    height: int | None = None
    width: int | None = None
    """Spatial size the graph was exported with; ``None`` when height/width are dynamic."""
    dynamic_batch: bool = True
    dynamic_hw: bool = False
    num_frames: int | None = None
    """Clip models: ``T`` the graph was exported with; ``None`` when ``T`` is dynamic."""


@dataclass(frozen=True)
class ClipCard:
    """How a video model samples a video (``qualitas.data.sampling.ClipSampling``)."""

    mode: str
    num_frames: int
    step: int = 1
    clips: int = 1
    """Clips per video (spread over it); their scores are averaged."""
    fixed_num_frames: bool = False


@dataclass(frozen=True)
class OutputCard:
    """What the graph returns and how to read it as a MOS-like score.

    ``kind="score"``: ``(B,)``; ``mos = output * scale + shift`` (undoes the MOS
    normalisation of training). ``kind="distribution"``: ``(B, N)`` probabilities over
    ``bins``; ``mos = sum(p * bins)`` (already in MOS units, ``scale=1, shift=0``).
    """

    kind: str
    name: str
    bins: tuple[float, ...] | None = None
    scale: float = 1.0
    shift: float = 0.0
    mos_norm: str = "none"
    higher_is_better: bool = True
    score_range: tuple[float, float] | None = None
    labels: tuple[str, ...] | None = None
    """Task models: the class names, in logit order."""
    palette: tuple[tuple[int, int, int], ...] | None = None
    """Segmentation: one RGB colour per class (overlays)."""
    ignore_index: int | None = None
    names: tuple[str, ...] | None = None
    """Detectors: every graph output in order (``name`` is the first): boxes, scores, labels
    [, keypoints]; labels are 1..K, ``labels[i - 1]`` names label ``i``."""
    keypoint_names: tuple[str, ...] | None = None
    skeleton: tuple[tuple[int, int], ...] | None = None
    """Keypoints: COCO's 1-based index pairs to draw."""
    score_threshold: float | None = None
    """Detectors: the lowest score the graph returns (its decoding threshold)."""


@dataclass(frozen=True)
class ModelCard:
    """The full card; ``to_dict``/``from_dict`` round-trip through ``model.json``."""

    name: str
    full_reference: bool
    video: bool
    input: InputCard
    output: OutputCard
    clips: ClipCard | None = None
    architecture: dict[str, Any] = field(default_factory=dict)
    """``spec`` of the model (arch, backbone, build kwargs): enough to rebuild it in PyTorch."""
    trained_on: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    """``{"val": {"srocc", "plcc", ...}, "test": {...}}`` from the run's metrics.json."""
    export: dict[str, Any] = field(default_factory=dict)
    """``format``, ``file``, exporter details, parity, quantisation; empty before export."""
    qualitas_version: str = __version__

    # ------------------------------------------------------------------ building

    @classmethod
    def from_training(
        cls, spec: dict[str, Any], info: RunInfo | dict[str, Any], *, name: str | None = None
    ) -> ModelCard:
        """Card of a trained model: ``spec`` is ``ModelSpec.to_dict()``, ``info`` the checkpoint's
        run info (a :class:`qualitas.models.checkpoint.RunInfo`, or its ``to_dict()``)."""
        from qualitas.models.checkpoint import RunInfo

        run = info if isinstance(info, RunInfo) else RunInfo.from_dict(info)
        fr, video = bool(spec["full_reference"]), bool(spec["video"])
        size = run.input_size.to_dict()
        size.pop("hflip", None)  # a training-only augmentation
        fixed_hw = _policy_hw(size)
        input_card = InputCard(
            names=("dist", "ref") if fr else ("dist",),
            layout="NTCHW" if video else "NCHW",
            channels=int(spec.get("in_channels", 3)),
            mean=tuple(float(v) for v in spec.get("mean", ())),
            std=tuple(float(v) for v in spec.get("std", ())),
            normalized_inside=bool(spec.get("normalized_inside", True)),
            size_policy=size,
            height=fixed_hw[0] if fixed_hw else None,
            width=fixed_hw[1] if fixed_hw else None,
            dynamic_hw=fixed_hw is None,
            num_frames=int(spec["num_frames"]) if video and spec.get("num_frames") else None,
        )
        clips = None
        if video:
            s = dataclasses.asdict(run.sampling) if run.sampling is not None else {}
            num_frames = int(spec.get("num_frames") or s.get("num_frames") or 8)
            clips = ClipCard(
                mode=str(s.get("mode", "uniform")),
                num_frames=int(s.get("num_frames", num_frames)),
                step=int(s.get("step", 1)),
                clips=max(1, run.eval_clips),
                fixed_num_frames=bool(spec.get("fixed_num_frames", False)),
            )
        norm = run.score_norm
        distribution = spec.get("output") == "distribution"
        rng = run.score_range
        task_output = spec.get("output") in TASK_OUTPUTS
        extra = run.extra  # task runs: classes, palette, ignore_index (training/vision.py)
        detector = spec.get("output") in DETECTION_OUTPUTS
        output = (
            OutputCard(
                kind=str(spec["output"]),
                name="boxes",
                names=("boxes", "scores", "labels")
                + (("keypoints",) if spec["output"] == "keypoints" else ())
                + ("batch_index",),
                labels=tuple(str(c) for c in extra.get("classes") or ()) or None,
                keypoint_names=tuple(str(k) for k in extra.get("keypoint_names") or ()) or None,
                skeleton=tuple((int(a), int(b)) for a, b in extra.get("skeleton") or ()) or None,
                score_threshold=float((extra.get("detector") or {}).get("score_thresh", 0.05)),
            )
            if detector
            else OutputCard(
                kind=str(spec["output"]),
                name="logits",
                labels=tuple(str(c) for c in extra.get("classes") or ()) or None,
                palette=tuple(tuple(int(v) for v in c) for c in extra.get("palette") or ()) or None,
                ignore_index=extra.get("ignore_index") if spec.get("output") == "segmentation" else None,
            )
            if task_output
            else OutputCard(
                kind="distribution" if distribution else "score",
                name="probs" if distribution else "score",
                bins=tuple(float(b) for b in spec["bins"]) if distribution and spec.get("bins") else None,
                scale=1.0 if distribution else norm.scale,
                shift=0.0 if distribution else norm.shift,
                mos_norm="none" if distribution else norm.kind,
                higher_is_better=run.higher_is_better,
                score_range=(float(rng[0]), float(rng[1])) if rng else None,
            )
        )
        metrics = run.metrics
        evaluation = {
            split: {
                k: v
                for k, v in metrics[split].items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            for split in ("val", "test")
            if isinstance(metrics.get(split), dict) and metrics[split]
        }
        stored = run.to_dict(loaded=True)
        trained_on = {
            k: stored[k]
            for k in (
                "task",
                "dataset",
                "manifest",
                "root",
                "target",
                "split_seed",
                "split_ratios",
                "epoch",
                "checkpoint",
            )
            if stored.get(k) is not None
        }
        if metrics.get("split_sizes"):
            trained_on["split_sizes"] = metrics["split_sizes"]
        return cls(
            name=sanitize_name(name or run.run_name or "model"),
            full_reference=fr,
            video=video,
            input=input_card,
            output=output,
            clips=clips,
            architecture=dict(spec),
            trained_on=trained_on,
            evaluation=evaluation,
        )

    def with_export(self, **export: Any) -> ModelCard:
        return replace(self, export={**self.export, **export})

    def with_input(self, **changes: Any) -> ModelCard:
        return replace(self, input=replace(self.input, **changes))

    # ------------------------------------------------------------------ reading

    @property
    def format(self) -> str | None:
        return self.export.get("format")

    @property
    def file(self) -> str | None:
        return self.export.get("file")

    @property
    def bins(self) -> tuple[float, ...] | None:
        return self.output.bins

    @property
    def score_range(self) -> tuple[float, float]:
        """Range for the output document: the training score range, else unbounded."""
        r = self.output.score_range
        if r is not None:
            return r
        if self.output.bins:
            return (min(self.output.bins), max(self.output.bins))
        return (-math.inf, math.inf)

    def describe_input(self) -> str:
        """One line for ``MetricInfo.input``."""
        what = (
            f"clips of {self.clips.num_frames} frames ({self.clips.mode} sampling)"
            if self.clips
            else "RGB images"
        )
        mode = self.input.size_policy.get("mode", "none")
        size = self.input.size_policy.get("size")
        sizing = f"{mode} {size[0]}x{size[1]}" if size and mode in ("resize", "crop", "pad") else mode
        m = self.min_side()
        return (
            f"learned model ({self.export.get('format', 'pytorch')}): {what} at least {m}x{m}, "
            f"sizing {sizing}"
        )

    def min_side(self) -> int:
        """Smallest height/width a scorer accepts: the fragment patch for ``fragments``
        sizing, else 32. Smaller inputs would be scored from a handful of upsampled pixels,
        a number without meaning, so they are refused."""
        policy = self.input.size_policy
        if policy.get("mode") == "fragments" and policy.get("patch"):
            return int(policy["patch"])
        return MIN_INPUT_SIDE

    # ------------------------------------------------------------------ (de)serialising

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d = {"card_version": CARD_VERSION, **d}
        return _lists(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "model.json") -> ModelCard:
        """Parse a card; anything missing or malformed is a one-line :class:`UsageError`."""
        if not isinstance(d, dict):
            raise UsageError(f"{source}: not a model card (expected a JSON object)")
        version = d.get("card_version")
        if version != CARD_VERSION:
            raise UsageError(f"{source}: card_version {version!r} is not supported (expected {CARD_VERSION})")
        try:
            inp = dict(d["input"])
            for key in ("names", "mean", "std", "value_range"):
                inp[key] = tuple(inp.get(key) or ())
            out = dict(d["output"])
            out["bins"] = tuple(out["bins"]) if out.get("bins") else None
            out["score_range"] = tuple(out["score_range"]) if out.get("score_range") else None
            out["labels"] = tuple(out["labels"]) if out.get("labels") else None
            out["palette"] = tuple(tuple(c) for c in out["palette"]) if out.get("palette") else None
            out["names"] = tuple(out["names"]) if out.get("names") else None
            out["keypoint_names"] = tuple(out["keypoint_names"]) if out.get("keypoint_names") else None
            out["skeleton"] = tuple(tuple(c) for c in out["skeleton"]) if out.get("skeleton") else None
            clips = ClipCard(**d["clips"]) if d.get("clips") else None
            card = cls(
                name=str(d["name"]),
                full_reference=bool(d["full_reference"]),
                video=bool(d["video"]),
                input=InputCard(**inp),
                output=OutputCard(**out),
                clips=clips,
                architecture=dict(d.get("architecture") or {}),
                trained_on=dict(d.get("trained_on") or {}),
                evaluation=dict(d.get("evaluation") or {}),
                export=dict(d.get("export") or {}),
                qualitas_version=str(d.get("qualitas_version", "")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UsageError(f"{source}: malformed model card ({type(err).__name__}: {err})") from None
        if card.video and card.clips is None:
            raise UsageError(f"{source}: a video model card needs 'clips' (its frame sampling)")
        if card.output.kind not in OUTPUT_KINDS:
            raise UsageError(f"{source}: unknown output kind {card.output.kind!r}")
        if card.output.kind == "distribution" and not card.output.bins:
            raise UsageError(f"{source}: a distribution output needs 'bins'")
        if card.input.size_policy.get("mode", "none") not in SIZE_MODES:
            raise UsageError(f"{source}: unknown size policy {card.input.size_policy.get('mode')!r}")
        return card


def write_card(card: ModelCard, folder: str | Path) -> Path:
    """Write ``folder/model.json`` atomically."""
    from qualitas.files import atomic_write_text

    path = Path(folder) / CARD_FILE
    atomic_write_text(path, json.dumps(card.to_dict(), indent=1, allow_nan=False) + "\n")
    return path


def read_card(path: str | Path) -> ModelCard:
    """Read a ``model.json`` (a folder means ``folder/model.json``)."""
    p = Path(path)
    if p.is_dir():
        p = p / CARD_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{p}: no model card (every qualitas export writes model.json beside the model)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{p}: unreadable model card ({err})") from None
    return ModelCard.from_dict(data, source=str(p))


def sanitize_name(name: str) -> str:
    """A metric-like name (letters, digits, ``_ . -``) for output documents."""
    out = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    return out or "model"


def _policy_hw(size: dict[str, Any]) -> tuple[int, int] | None:
    """Model input size fixed by the sizing policy, or None when it follows the media."""
    mode = size.get("mode", "none")
    if mode == "fragments":
        side = int(size.get("grid", 7)) * int(size.get("patch", 32))
        return side, side
    if mode in ("resize", "crop", "pad") and size.get("size"):
        return int(size["size"][0]), int(size["size"][1])
    return None


def _lists(obj: Any) -> Any:
    """Tuples -> lists, recursively (JSON has no tuples; keeps the file diff-friendly)."""
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_lists(v) for v in obj]
    return obj

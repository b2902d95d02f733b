"""Exporting detectors (``task: detection | keypoints``): ONNX and OpenVINO with decoding and
NMS inside the graph, and the parity check of decoded detections.

The graph is :class:`qualitas.models.detection.DetectorGraph` (the trained torchvision
detector behind a batch interface) exported with torch's TorchScript-based ONNX exporter
(``torch.onnx.export(dynamo=False)``): torchvision's detectors are written for it (their
``GeneralizedRCNNTransform`` resize, anchor generation, box decoding and
``torchvision.ops.batched_nms`` have ONNX paths), while the ``torch.export``-based exporter
stops at their data-dependent shapes. torchvision loops over the images of a list in Python,
so a plain trace would hold exactly as many images as it was traced with; instead the
one-image graph (:meth:`DetectorGraph.detect_one`) is traced and a scripted loop over the
batch calls it (:class:`BatchLoop`, an ONNX ``Loop``), concatenating the detections with
their ``batch_index``. Dynamic: batch, height and width of the input (any size: the graph
resizes each image to ``min_size``/``max_size`` itself) and the number of detections ``N``.
OpenVINO converts the ONNX file (``openvino.convert_model``).

Parity (``--verify``) compares eager PyTorch and the export on real images (the run's own
validation images when the run folder lists them, and scikit-image's sample photos) and on a
random image at another size: every eager detection must have an exported one with the same
label, boxes within ``box_tolerance`` px and score within ``tolerance``; a detection of either
side without a partner is allowed only when its score is within ``threshold_margin`` of the
graph's score threshold (float rounding can move a score across it), and is counted.
"""

from __future__ import annotations

import datetime
import json
import math
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from qualitas.errors import DependencyError, UsageError
from qualitas.export.card import ModelCard, write_card
from qualitas.export.common import ExportError, to_numpy

DETECTION_FORMATS = ("onnx", "openvino")
DEFAULT_BOX_TOLERANCE = 0.01
"""Largest box-coordinate difference (pixels of the input) allowed by ``--verify``."""
DEFAULT_SCORE_TOLERANCE = 1e-4
THRESHOLD_MARGIN = 1e-3
LEGACY_OPSET = 17
RCNN_FAMILIES = ("faster_rcnn", "keypoint_rcnn")
"""Detector families whose RoI heads drop boxes under 0.01 px (``remove_small_boxes``)."""


def detection_io(card: ModelCard, preset: str, input_names, output_name, *, batch: bool = True) -> ModelCard:
    """Graph names: ``image`` -> ``boxes, scores, labels[, keypoints], batch_index``;
    ``triton``: ``INPUT__0`` -> ``OUTPUT__0..``; ``--input-name`` / ``--output-name``
    (comma-separated for several outputs) override. ``batch=False``: a one-image graph,
    without ``batch_index``."""
    outputs = list(card.output.names or ("boxes", "scores", "labels", "batch_index"))
    if not batch:
        outputs = [n for n in outputs if n != "batch_index"]
    inputs = ["image"]
    if preset == "triton":
        inputs = ["INPUT__0"]
        outputs = [f"OUTPUT__{i}" for i in range(len(outputs))]
    elif preset != "default":
        raise UsageError(f"--io-names must be one of default, triton, got '{preset}'")
    if input_names:
        inputs = [str(v) for v in input_names]
        if len(inputs) != 1:
            raise UsageError(f"a detector has one input (the image); got {len(inputs)} input names")
    if output_name:
        given = [v.strip() for v in str(output_name).split(",")]
        if len(given) != len(outputs):
            raise UsageError(
                f"a {card.output.kind} graph has {len(outputs)} outputs ({', '.join(outputs)}): "
                f"give --output-name as {len(outputs)} comma-separated names"
            )
        outputs = given
    if len(set(inputs + outputs)) != len(inputs) + len(outputs):
        raise UsageError(f"graph names must be distinct, got {inputs} and {outputs}")
    return replace(
        card,
        input=replace(
            card.input, names=tuple(inputs), dynamic_batch=batch, dynamic_hw=True, height=None, width=None
        ),
        output=replace(card.output, name=outputs[0], names=tuple(outputs)),
    )


class _OneImage(torch.nn.Module):
    """:meth:`DetectorGraph.detect_one` as a module's forward, for tracing."""

    def __init__(self, graph: torch.nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.graph.detect_one(image)


class BatchLoop(torch.nn.Module):
    """The exported batch: a scripted loop over the images calling the traced one-image graph
    (``one``), detections concatenated in batch order with their ``batch_index``.

    Written by hand because torchvision's detectors loop over a Python list, which tracing
    unrolls into a fixed batch; a scripted loop becomes an ONNX ``Loop`` instead.
    """

    def __init__(self, one: torch.nn.Module) -> None:
        super().__init__()
        self.one = one

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        boxes, scores, labels, index = [], [], [], []
        for i in range(images.shape[0]):
            b, s, lab = self.one(images[i : i + 1])
            boxes.append(b)
            scores.append(s)
            labels.append(lab)
            index.append(torch.full_like(lab, i))
        return torch.cat(boxes), torch.cat(scores), torch.cat(labels), torch.cat(index)


class KeypointBatchLoop(torch.nn.Module):
    """:class:`BatchLoop` for keypoint models (``keypoints`` before ``batch_index``); TorchScript
    types each loop by its outputs, hence two classes."""

    def __init__(self, one: torch.nn.Module) -> None:
        super().__init__()
        self.one = one

    def forward(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        boxes, scores, labels, keypoints, index = [], [], [], [], []
        for i in range(images.shape[0]):
            b, s, lab, k = self.one(images[i : i + 1])
            boxes.append(b)
            scores.append(s)
            labels.append(lab)
            keypoints.append(k)
            index.append(torch.full_like(lab, i))
        return torch.cat(boxes), torch.cat(scores), torch.cat(labels), torch.cat(keypoints), torch.cat(index)


def export_detection_onnx(
    graph: torch.nn.Module, card: ModelCard, path: Path, example: torch.Tensor, opset: int | None
) -> None:
    """``graph``: a :class:`DetectorGraph`; ``example`` one ``(1, 3, H, W)`` image. A card
    without ``input.dynamic_batch`` gets the traced one-image graph alone (batch 1)."""
    names = list(card.output.names or ())
    batch = bool(card.input.dynamic_batch)
    axes = {
        card.input.names[0]: {0: "batch", 2: "height", 3: "width"} if batch else {2: "height", 3: "width"},
        **{n: {0: "num_detections"} for n in names},
    }
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints in torchvision's code
            one = torch.jit.trace(_OneImage(graph), (example,), check_trace=False)
            if batch:
                loop = torch.jit.script(KeypointBatchLoop(one) if graph.keypoints else BatchLoop(one))
                module, x = loop, example.expand(2, -1, -1, -1).contiguous()
            else:
                module, x = one, example
            torch.onnx.export(
                module,
                (x,),
                str(path),
                dynamo=False,
                opset_version=opset or LEGACY_OPSET,
                input_names=list(card.input.names),
                output_names=names,
                dynamic_axes=axes,
            )
    except Exception as err:  # noqa: BLE001 - any exporter failure becomes one clear line
        raise ExportError(f"ONNX export of the detector failed: {type(err).__name__}: {_line(err)}") from err


class DetectionRunner:
    """An exported detector: ``runner(images (B, 3, H, W)) -> (boxes, scores, labels[, keypoints],
    batch_index)``, what :class:`qualitas.models.detection.DetectorGraph` returns.

    Exports made before the batch was dynamic (``input.dynamic_batch`` false in their card)
    have no ``batch_index`` output: they take one image, and the runner adds the index (zeros).
    """

    def __init__(self, path: str | Path, card: ModelCard, device: str = "cpu") -> None:
        self.card = card
        self.format = str(card.format)
        self.names = list(card.output.names or ())
        if self.format == "onnx":
            try:
                import onnxruntime as ort
            except ImportError:
                raise DependencyError(
                    "ONNX Runtime is not installed: pip install 'qualitas[export]'"
                ) from None
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.log_severity_level = 3  # the Loop body's implicit-input renaming warnings
            try:
                self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as err:  # noqa: BLE001 - onnxruntime's exception types are not public
                raise ExportError(f"{path}: ONNX Runtime cannot load it ({_line(err)})") from None
            got = [o.name for o in self.session.get_outputs()]
            if got != self.names:
                raise ExportError(f"{path}: graph outputs {got} are not the card's {self.names}")
        elif self.format == "openvino":
            try:
                import openvino as ov
            except ImportError:
                raise DependencyError("OpenVINO is not installed: pip install 'qualitas[openvino]'") from None
            self.compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        else:
            raise UsageError(
                f"{path}: detectors are exported as {' or '.join(DETECTION_FORMATS)}, not {self.format}"
            )

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.card.input.dynamic_batch and images.shape[0] != 1:
            raise ExportError(f"this export takes one image at a time (batch 1), got {images.shape[0]}")
        x = to_numpy(images)
        try:
            if self.format == "onnx":
                outs = self.session.run(self.names, {self.card.input.names[0]: x})
            else:
                res = self.compiled([x])
                outs = [res[o] for o in self.compiled.outputs]
        except Exception as err:  # noqa: BLE001 - runtime exception types are not public
            raise ExportError(
                f"the exported detector refused an input of shape {tuple(x.shape)}: {_line(err)}"
            ) from None
        got = tuple(torch.from_numpy(o.copy()) for o in outs)
        if not self.card.input.dynamic_batch:
            got = (*got, torch.zeros_like(got[2]))
        # OpenVINO (2026.4) returns one row of uninitialised values (box ~0 px wide, any
        # score) instead of an empty tensor when a Keypoint R-CNN image has no detections.
        # Real rows have a score in (threshold, 1]; the R-CNN families' boxes are also at least
        # 0.01 px wide and high (torchvision's RoI heads drop smaller ones, the dense families
        # keep boxes clipped to a sliver at the border): anything else is dropped.
        b, sc = got[0], got[1]
        keep = torch.isfinite(sc) & (sc > float(self.card.output.score_threshold or 0.0)) & (sc <= 1.0)
        if self.card.architecture.get("build_kwargs", {}).get("arch") in RCNN_FAMILIES:
            keep &= ((b[:, 2] - b[:, 0]) >= 1e-2) & ((b[:, 3] - b[:, 1]) >= 1e-2)
        if bool(keep.all()):
            return got
        return tuple(t[keep] for t in got)


@dataclass
class DetectionParity:
    """Detections of the export against eager PyTorch, per verification image."""

    tolerance: float
    box_tolerance: float
    margin: float
    cases: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        """The largest score difference of matched detections (``inf`` when any case failed)."""
        if any(not c["ok"] for c in self.cases):
            return math.inf
        return max((c["max_score_diff"] for c in self.cases), default=math.nan)

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c["ok"] for c in self.cases)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "tolerance": self.tolerance,
            "box_tolerance_px": self.box_tolerance,
            "threshold_margin": self.margin,
            "cases": [{k: _finite(v) for k, v in c.items()} for c in self.cases],
            "notes": self.notes,
        }

    def summary(self) -> str:
        lines = [
            f"  {c['name']} {c['shape']}: {c['eager']} eager / {c['exported']} exported detections, "
            f"{c['matched']} matched, max |box diff| {c['max_box_diff']:.3g} px, max |score diff| "
            f"{c['max_score_diff']:.3g}, {c['near_threshold']} unmatched near the threshold or the detection cap"
            + ("" if c["ok"] else f", {c['unmatched']} unmatched: FAILED")
            + (" (not counted: see the note)" if c.get("counts") is False else "")
            for c in self.cases
        ]
        verdict = "ok" if self.ok else "FAILED"
        if any(c.get("counts") is False for c in self.cases):
            lines.append(
                "  'as is' cases: the graph takes any size, but its traced resize computes the scale "
                "in float32 (eager: float64), so some sizes resize one pixel apart; qualitas predict "
                "feeds images fitted to the working size (scale exactly 1), the 'fitted' cases"
            )
        lines.append(
            f"parity {verdict}: boxes within {self.box_tolerance:g} px, scores within {self.tolerance:g}"
        )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def match_detections(
    want: tuple[torch.Tensor, ...],
    got: tuple[torch.Tensor, ...],
    *,
    threshold: float,
    box_tolerance: float,
    score_tolerance: float,
    margin: float = THRESHOLD_MARGIN,
    cap: int | None = None,
) -> dict:
    """Pair each eager detection with the closest exported one of its label (see the module
    docstring); keypoints of pairs are held to ``box_tolerance`` too.

    ``cap``: the graph's ``detections_per_img``. When both sides hold that many, a detection
    without a partner whose score is within ``margin`` of its side's lowest kept score is
    counted as near the cut-off rather than failed: near-equal candidates at the cap (or in
    NMS before it) can fall either way with float rounding.
    """
    wb, ws, wl = (t.double() for t in want[:3])
    gb, gs, gl = (t.double() for t in got[:3])
    used = torch.zeros(len(gb), dtype=torch.bool)
    at_cap = cap is not None and len(wb) == cap and len(gb) == cap
    w_cut = float(ws.min()) + margin if at_cap else -math.inf
    g_cut = float(gs.min()) + margin if at_cap else -math.inf
    box_diff = score_diff = 0.0
    matched = near = bad = 0
    for i in range(len(wb)):
        cand = (~used) & (gl == wl[i])
        ok = False
        if cand.any():
            d = (gb - wb[i]).abs().amax(1)
            d[~cand] = math.inf
            j = int(d.argmin())
            sd = float((gs[j] - ws[i]).abs())
            kd = 0.0
            if len(want) > 3 and len(got) > 3:
                kd = float((got[3][j, :, :2].double() - want[3][i, :, :2].double()).abs().max())
            if float(d[j]) <= box_tolerance and sd <= score_tolerance and kd <= box_tolerance:
                used[j] = True
                ok = True
                matched += 1
                box_diff, score_diff = max(box_diff, float(d[j]), kd), max(score_diff, sd)
        if not ok:
            if float(ws[i]) < threshold + margin or float(ws[i]) <= w_cut:
                near += 1
            else:
                bad += 1
    for j in torch.nonzero(~used).flatten().tolist():
        if float(gs[j]) < threshold + margin or float(gs[j]) <= g_cut:
            near += 1
        else:
            bad += 1
    return {
        "eager": len(wb),
        "exported": len(gb),
        "matched": matched,
        "max_box_diff": box_diff,
        "max_score_diff": score_diff,
        "near_threshold": near,
        "unmatched": bad,
        "ok": bad == 0,
    }


def verification_images(card: ModelCard) -> tuple[list[tuple[str, torch.Tensor]], list[str]]:
    """Real images (the run's validation images, scikit-image photos) and one random image."""
    from qualitas.export.verify import SAMPLE_IMAGES, sample_photos
    from qualitas.io.image import read_image
    from qualitas.models.checkpoint import run_dir_of

    images: list[tuple[str, torch.Tensor]] = []
    notes: list[str] = []
    ckpt = card.trained_on.get("checkpoint")
    run = run_dir_of(Path(ckpt)) if ckpt else None
    listing = run / "splits.json" if run is not None else None
    if listing is not None and listing.is_file():
        paths = (json.loads(listing.read_text()).get("val") or [])[:4]
        for p in paths:
            try:
                images.append((f"val {Path(p).name}", read_image(p).data))
            except Exception as err:  # noqa: BLE001 - a moved dataset only loses these cases
                notes.append(f"validation image {p} not read ({_line(err)})")
    else:
        notes.append("no splits.json beside the checkpoint: the run's own images were not checked")
    photos = sample_photos(256)
    if photos:
        images += [(f"sample {n}", p) for n, p in zip(SAMPLE_IMAGES, photos)]
    else:
        notes.append("scikit-image is not installed: its sample photos were not checked")
    g = torch.Generator().manual_seed(3)
    images.append(("random 120x200", torch.rand(3, 120, 200, generator=g)))
    return images, notes


def export_detector(
    model: torch.nn.Module,
    card: ModelCard,
    fmt: str,
    out: str | Path,
    *,
    opset: int | None = None,
    verify: bool = False,
    tolerance: float = DEFAULT_SCORE_TOLERANCE,
    box_tolerance: float = DEFAULT_BOX_TOLERANCE,
    io_names: str = "default",
    input_names=None,
    output_name: str | None = None,
) -> tuple[ModelCard, DetectionParity | None]:
    """Export a trained detector (``model``: the torchvision detector, ``card`` its training
    card) to ``out/`` as ``fmt`` and write ``model.json``; returns the written card and, with
    ``verify``, the parity report."""
    from qualitas.models.detection import DetectorGraph, fit_to_detector, split_batch

    if fmt not in DETECTION_FORMATS:
        raise UsageError(
            f"detectors export to {', '.join(DETECTION_FORMATS)} (decoding and NMS in the graph); "
            f"--format {fmt} is not supported for them"
        )
    graph = DetectorGraph(model.eval().cpu())
    # OpenVINO (2026.4) runs the batch Loop of Keypoint R-CNN wrongly (extra rows at batch 2,
    # heap corruption at batch 8, measured): its keypoint exports stay one image per call.
    batch = not (fmt == "openvino" and graph.keypoints)
    card = detection_io(card, io_names, input_names, output_name, batch=batch)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    side = int(card.architecture.get("build_kwargs", {}).get("min_size") or 320)
    example = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    if fmt == "onnx":
        export_detection_onnx(graph, card, folder / "model.onnx", example, opset)
        file, exporter = "model.onnx", "torch.onnx.export(dynamo=False)"
        extra: dict = {}
    else:
        try:
            import openvino as ov
        except ImportError:
            raise DependencyError("OpenVINO is not installed: pip install 'qualitas[openvino]'") from None
        with tempfile.TemporaryDirectory(prefix="qualitas-ov-") as tmp:
            export_detection_onnx(graph, card, Path(tmp) / "model.onnx", example, opset)
            try:
                ov_model = ov.convert_model(str(Path(tmp) / "model.onnx"))
            except Exception as err:  # noqa: BLE001 - OpenVINO raises its own exception types
                raise ExportError(f"OpenVINO conversion of the detector failed: {_line(err)}") from err
        ov.save_model(ov_model, str(folder / "model.xml"), compress_to_fp16=False)
        file, exporter = "model.xml", "torch.onnx.export(dynamo=False) -> openvino.convert_model"
        extra = {"weights": "model.bin", "openvino_version": ov.get_version()}
    card = card.with_export(
        format=fmt,
        file=file,
        opset=opset or LEGACY_OPSET,
        exporter=exporter,
        dynamic=(["batch"] if batch else []) + ["height", "width", "num_detections"],
        **({} if batch else {"fixed": {"batch": 1}}),
        source=str(card.trained_on.get("checkpoint", "")),
        exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        torch_version=torch.__version__,
        **extra,
    )
    parity = None
    if verify:
        runner = DetectionRunner(folder / file, card)
        images, notes = verification_images(card)
        parity = DetectionParity(tolerance, box_tolerance, THRESHOLD_MARGIN, notes=notes)
        thresh = float(card.output.score_threshold or 0.0)
        kw = card.architecture.get("build_kwargs", {})
        cap = int(kw["detections_per_img"]) if kw.get("detections_per_img") else None
        lo, hi = int(kw.get("min_size") or 320), int(kw.get("max_size") or 512)
        cases = [(f"{n} fitted", fit_to_detector(img, lo, hi)[0], True) for n, img in images]
        cases += [
            (f"{n} as is", img, False) for n, img in images if fit_to_detector(img, lo, hi)[1] != (1.0, 1.0)
        ]
        # One batch of two same-size images (a fitted image and its mirror): each must get what
        # it gets alone.
        first = cases[0][1]
        if batch:
            cases.append(("batch of 2 (fitted + mirrored)", torch.stack([first, first.flip(-1)]), True))
        for name, img, counts in cases:
            x = (img[None] if img.ndim == 3 else img).float()
            with torch.no_grad():
                want = [graph.detect_one(x[i : i + 1]) for i in range(x.shape[0])]
            try:
                got = split_batch(runner(x), x.shape[0])
            except ExportError as err:
                n = sum(len(w[0]) for w in want)
                parity.cases.append({"name": name, "shape": list(x.shape), "ok": False, "eager": n,
                                     "exported": 0, "matched": 0, "max_box_diff": math.inf, "max_score_diff": math.inf,
                                     "near_threshold": 0, "unmatched": n})  # fmt: skip
                parity.notes.append(f"{name}: {err}")
                continue
            per = [
                match_detections(
                    w, g, threshold=thresh, box_tolerance=box_tolerance, score_tolerance=tolerance, cap=cap
                )
                for w, g in zip(want, got)
            ]
            m = {
                **{
                    k: sum(p[k] for p in per)
                    for k in ("eager", "exported", "matched", "near_threshold", "unmatched")
                },
                **{k: max(p[k] for p in per) for k in ("max_box_diff", "max_score_diff")},
                "ok": all(p["ok"] for p in per),
            }
            if not counts:  # informational: the traced resize may round one pixel differently
                m = {**m, "counts": False, "ok": True, "failed_as_is": not m["ok"]}
            parity.cases.append({"name": name, "shape": list(x.shape), **m})
        card = card.with_export(parity=parity.to_dict())
    write_card(card, folder)
    return card, parity


def _finite(v):
    """JSON has no infinity: a failed case's differences are written as null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__

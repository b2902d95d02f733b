"""``export_model``: trained run -> exported file + ``model.json`` (+ parity, + int8).

The network exported is the one training built and trained (rebuilt from the checkpoint's
model card, weights loaded strictly): there is no export-only copy of any model.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from qualitas.errors import UsageError
from qualitas.export.card import DETECTION_OUTPUTS, ModelCard, write_card
from qualitas.export.common import (
    ExportError,
    example_hw,
    example_inputs,
    quiet_torch_logs,
    to_mos,
    wanted_dynamic,
    with_io_names,
)
from qualitas.export.formats import FORMATS
from qualitas.export.onnx import check_opset
from qualitas.export.verify import DEFAULT_TOLERANCE, ParityReport, check_parity, verification_cases

log = logging.getLogger("qualitas.export")

QUANTIZE = ("int8", "int8-dynamic")
ONNX_BASED = ("onnx", "openvino", "saved_model")
"""Formats converted from an ONNX export (``--opset`` applies)."""
DYNAMIC_EXAMPLE_HW = 128


@dataclass
class Source:
    """A trained model and its deployment card (no export details yet)."""

    model: nn.Module
    card: ModelCard


@dataclass
class ExportResult:
    folder: Path
    card: ModelCard
    parity: ParityReport | None = None
    quantization: object | None = None
    """:class:`qualitas.export.quantize.QuantReport` with ``--quantize``."""

    @property
    def path(self) -> Path:
        return self.folder / str(self.card.file)


def load_source(path: str | Path, *, name: str | None = None) -> Source:
    """A run directory (its best checkpoint) or a ``.ckpt`` -> the trained model + card."""
    from qualitas.models.checkpoint import load_run  # reads the checkpoint; no Lightning import

    model, info = load_run(path, device="cpu")
    return Source(model.eval(), ModelCard.from_training(info.spec, info, name=name))


def export_model(
    source: str | Path | Source,
    fmt: str,
    out: str | Path,
    *,
    opset: int | None = None,
    dynamic: bool = False,
    verify: bool = False,
    quantize: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    name: str | None = None,
    fail_on_mismatch: bool = True,
    io_names: str = "default",
    input_names: Sequence[str] | None = None,
    output_name: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> ExportResult:
    """Export ``source`` to ``out/`` in format ``fmt`` and write ``out/model.json``.

    ``verify``: compare with PyTorch on random and real inputs; a largest absolute output
    difference above ``tolerance`` raises :class:`ExportError` (after writing the card,
    which records the failure) unless ``fail_on_mismatch=False`` (then check
    ``result.parity.ok``). ``quantize="int8"`` (ONNX only): static int8 with ONNX
    Runtime, calibrated on the verification inputs; the card then points at
    ``model.int8.onnx`` and the score change is reported instead of checked.
    ``io_names`` (``default`` | ``triton``), ``input_names``, ``output_name``: the graph's
    names (:func:`qualitas.export.common.with_io_names`), recorded in the card.
    ``input_size`` ``(H, W)``: a fixed graph height/width for a model that takes any size
    (size policy ``none``, e.g. the importance predictor), e.g. the frame size it will serve,
    or for formats that convert such graphs only at a fixed size (``saved_model``); inputs of
    other sizes are then resized to it by the runtime.
    ``opset`` is checked against what the installed torch/onnx export
    (:func:`qualitas.export.onnx.check_opset`).
    """
    fmt_entry = FORMATS.get(fmt)
    if quantize is not None and quantize not in QUANTIZE:
        raise UsageError(f"--quantize must be one of {', '.join(QUANTIZE)}, got '{quantize}'")
    if quantize is not None and fmt != "onnx":
        raise UsageError("--quantize int8 applies to --format onnx (ONNX Runtime quantisation)")
    if opset is not None and fmt not in ONNX_BASED:
        raise UsageError(f"--opset applies to --format {', '.join(ONNX_BASED)}")
    check_opset(opset)
    src = source if isinstance(source, Source) else load_source(source, name=name)
    if src.card.output.kind in DETECTION_OUTPUTS:
        # Detectors: one image in, decoded detections out (export/detection.py).
        from qualitas.export.detection import DEFAULT_SCORE_TOLERANCE, export_detector

        if quantize is not None:
            raise UsageError("--quantize is not available for detectors")
        card, parity = export_detector(
            src.model,
            src.card,
            fmt,
            out,
            opset=opset,
            verify=verify,
            tolerance=DEFAULT_SCORE_TOLERANCE if tolerance == DEFAULT_TOLERANCE else tolerance,
            io_names=io_names,
            input_names=input_names,
            output_name=output_name,
        )
        result = ExportResult(Path(out), card, parity)  # type: ignore[arg-type]
        if fail_on_mismatch and parity is not None and not parity.ok:
            raise ExportError(f"parity check failed (details in {Path(out) / 'model.json'})")
        return result
    model = src.model.eval().cpu()
    card = with_io_names(src.card, io_names, input_names, output_name)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)

    want = wanted_dynamic(card, dynamic)
    hw = example_hw(card)
    if input_size is not None:
        hw = _fixed_size(card, input_size, dynamic)
        want -= {"height", "width"}
    elif "height" in want:
        # Trace at a comfortable size: at a size where a feature map shrinks to 1x1,
        # torch.export specialises and bounds height/width to at most the example's.
        hw = (max(hw[0], DYNAMIC_EXAMPLE_HW), max(hw[1], DYNAMIC_EXAMPLE_HW))
    example = example_inputs(card, 2, hw=hw)
    with quiet_torch_logs():
        card = fmt_entry.export(model, card, folder, example, dynamic=want, opset=opset)
    card = card.with_export(
        source=str(card.trained_on.get("checkpoint", "")),
        exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        torch_version=torch.__version__,
    )
    result = ExportResult(folder, card)
    need_cases = verify or quantize is not None
    cases, notes = verification_cases(card) if need_cases else ([], [])
    if verify:
        with quiet_torch_logs():
            runner = fmt_entry.load(folder / str(card.file), card, "cpu")
            result.parity = check_parity(model, runner, cases, tolerance=tolerance, notes=notes)
        card = card.with_export(parity=result.parity.to_dict())
    if quantize is not None:
        from qualitas.export.quantize import calibration_inputs, quantize_onnx, score_change

        method = "dynamic" if quantize == "int8-dynamic" else "static"
        int8_file = "model.int8.onnx"
        quantize_onnx(
            folder / str(card.file), folder / int8_file, card, calibration_inputs(cases), method=method
        )
        runner8 = fmt_entry.load(folder / int8_file, card, "cpu")
        report = score_change(model, runner8, lambda raw: to_mos(card, raw), cases, method)
        result.quantization = report
        card = card.with_export(
            file=int8_file,
            fp32_file=card.file,
            quantized={
                "dtype": "int8",
                **report.to_dict(),
                "calibration_inputs": len(calibration_inputs(cases)),
            },
        )
    result.card = card
    write_card(card, folder)
    if fail_on_mismatch and result.parity is not None and not result.parity.ok:
        raise ExportError(
            f"parity check failed: max |diff| {result.parity.max_abs_diff:.3g} > {tolerance:g} "
            f"({fmt} vs PyTorch; details in {folder / 'model.json'})"
        )
    return result


def _fixed_size(card: ModelCard, size: Sequence[int], dynamic: bool) -> tuple[int, int]:
    """``--input-size H W`` checked: positive, not with ``--dynamic``, and only where the
    card's size policy leaves the size to the media (a sized model has its size already)."""
    if len(size) != 2 or min(int(v) for v in size) < 16:
        raise UsageError(f"--input-size takes a height and a width of at least 16 px, got {list(size)}")
    if dynamic:
        raise UsageError("--input-size fixes the height/width; it does not go with --dynamic")
    mode = card.input.size_policy.get("mode", "none")
    if mode != "none":
        h, w = example_hw(card)
        raise UsageError(
            f"--input-size applies to models that take any size (size policy none); this one is "
            f"sized by its card ({mode} {h}x{w})"
        )
    return int(size[0]), int(size[1])

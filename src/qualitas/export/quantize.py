"""INT8 quantisation of an ONNX export with ONNX Runtime, and the score change it causes.

``static`` (default): QDQ format, per-channel int8 weights, uint8 activations, ranges
calibrated (min/max) on the verification inputs' real photos/clips plus random inputs;
best for convolutional backbones. ``dynamic``: int8 weights, activation ranges computed
per call (no calibration data; mostly helps MatMul/GRU-heavy models).
Quantisation changes scores on purpose, so it is reported, not checked against 1e-4.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from qualitas.errors import UsageError, first_line
from qualitas.export.card import ModelCard
from qualitas.export.common import ExportError, to_numpy
from qualitas.export.verify import Case

METHODS = ("static", "dynamic")


def quantize_onnx(
    src: str | Path,
    dst: str | Path,
    card: ModelCard,
    calibration: list[tuple[torch.Tensor, ...]],
    *,
    method: str = "static",
) -> None:
    """Write an int8 copy of ``src`` to ``dst`` (``calibration``: graph inputs, static only)."""
    if method not in METHODS:
        raise UsageError(f"unknown quantisation method '{method}'; choose from {', '.join(METHODS)}")
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        from qualitas.errors import DependencyError

        raise DependencyError("int8 quantisation needs onnxruntime: pip install 'qualitas[export]'") from None

    names = list(card.input.names)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{n: to_numpy(x) for n, x in zip(names, inputs)} for inputs in calibration])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="qualitas-q-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = Path(tmp) / "pre.onnx"
        try:
            # Shape inference + graph optimisation first, as ONNX Runtime recommends.
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - optional step: quantise the original graph instead
            pre = Path(src)
        try:
            if method == "dynamic":
                quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8)
            else:
                if not calibration:
                    raise UsageError("static quantisation needs calibration inputs")
                quantize_static(
                    str(pre),
                    str(dst),
                    _Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
        except UsageError:
            raise
        except Exception as err:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise ExportError(f"int8 quantisation failed: {first_line(err)}") from err


@dataclass
class QuantReport:
    """Score change of the int8 model against fp32 PyTorch, in output units (MOS-like)."""

    method: str
    cases: list[dict] = field(default_factory=list)

    @property
    def max_abs_change(self) -> float:
        return max((c["max_abs_change"] for c in self.cases), default=math.nan)

    def to_dict(self) -> dict:
        return {"method": self.method, "max_abs_change": self.max_abs_change, "cases": self.cases}

    def summary(self) -> str:
        lines = [
            f"{c['name']:<28} scores fp32 {_fmt(c['fp32'])} -> int8 {_fmt(c['int8'])} "
            f"(max |change| {c['max_abs_change']:.3g}, mean {c['mean_abs_change']:.3g})"
            for c in self.cases
        ]
        lines.append(
            f"int8 ({self.method}): max score change {self.max_abs_change:.3g} on the verification inputs"
        )
        return "\n".join(lines)


def _fmt(values: list[float]) -> str:
    shown = ", ".join(f"{v:.3f}" for v in values[:4])
    return f"[{shown}{', ...' if len(values) > 4 else ''}]"


@torch.no_grad()
def score_change(
    reference: Callable[..., torch.Tensor],
    quantized: Callable[..., torch.Tensor],
    to_score: Callable[[torch.Tensor], torch.Tensor],
    cases: list[Case],
    method: str,
) -> QuantReport:
    """Compare scores (``to_score`` maps raw outputs to MOS units) on every case."""
    report = QuantReport(method)
    for case in cases:
        a = to_score(reference(*case.inputs).float()).double()
        b = to_score(quantized(*case.inputs).float()).double()
        d = (a - b).abs()
        report.cases.append(
            {
                "name": case.name,
                "fp32": [float(v) for v in a],
                "int8": [float(v) for v in b],
                "max_abs_change": float(d.max()),
                "mean_abs_change": float(d.mean()),
            }
        )
    return report


def calibration_inputs(cases: list[Case], *, limit: int = 32) -> list[tuple[torch.Tensor, ...]]:
    """One single-item batch per calibration input (the graph's batch is dynamic)."""
    out: list[tuple[torch.Tensor, ...]] = []
    for case in sorted(cases, key=lambda c: not c.real):  # real content first
        for i in range(case.inputs[0].shape[0]):
            out.append(tuple(x[i : i + 1] for x in case.inputs))
    return out[:limit]


__all__ = ["METHODS", "QuantReport", "calibration_inputs", "quantize_onnx", "score_change"]

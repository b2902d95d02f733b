"""OpenVINO IR export (``model.xml`` + ``model.bin``) and an OpenVINO runtime runner.

The IR is converted from the ONNX export (``openvino.convert_model`` on the ``.onnx``),
so the graph, its input names and dynamic dimensions are the ONNX ones. Weights stay
fp32 (``compress_to_fp16=False``) and inference runs with ``INFERENCE_PRECISION_HINT=f32``:
OpenVINO's CPU plugin otherwise computes in bf16 on CPUs that support it, which moves
scores by ~1e-3 and fails the 1e-4 parity check.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import torch
from torch import nn

from qualitas.errors import DependencyError, first_line
from qualitas.export.card import ModelCard
from qualitas.export.common import ExportError, axes_of, card_for_shapes, to_numpy

FILE = "model.xml"


def _ov():
    try:
        import openvino
    except ImportError:
        raise DependencyError("OpenVINO is not installed: pip install 'qualitas[openvino]'") from None
    return openvino


def export_openvino(
    model: nn.Module,
    card: ModelCard,
    folder: Path,
    example: tuple[torch.Tensor, ...],
    *,
    dynamic: set[str],
    opset: int | None = None,
) -> ModelCard:
    """ONNX export to a temporary file, then ``convert_model`` + ``save_model`` (fp32)."""
    from qualitas.export.onnx import export_onnx

    ov = _ov()
    with tempfile.TemporaryDirectory(prefix="qualitas-ov-") as tmp:
        onnx_card = export_onnx(model, card, Path(tmp), example, dynamic=dynamic, opset=opset)
        try:
            ov_model = ov.convert_model(str(Path(tmp) / onnx_card.export["file"]))
        except Exception as err:  # noqa: BLE001 - OpenVINO raises its own exception types
            raise ExportError(f"OpenVINO conversion failed: {first_line(err)}") from err
    ov.save_model(ov_model, str(Path(folder) / FILE), compress_to_fp16=False)
    shape = ov_model.inputs[0].get_partial_shape()
    observed = {name for name, ax in axes_of(card).items() if shape[ax].is_dynamic}
    return card_for_shapes(card, observed, example).with_export(
        format="openvino",
        file=FILE,
        weights="model.bin",
        opset=onnx_card.export.get("opset"),
        exporter="torch.onnx.export(dynamo=True) -> openvino.convert_model",
        openvino_version=ov.get_version(),
        inference_precision="f32",
    )


class OpenVinoRunner:
    """A compiled OpenVINO model; ``device`` cpu -> ``CPU``, cuda -> OpenVINO ``GPU``."""

    format = "openvino"

    def __init__(self, path: str | Path, card: ModelCard, device: str = "cpu") -> None:
        ov = _ov()
        target = "GPU" if str(device).startswith("cuda") else "CPU"
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if target == "CPU":
            config["INFERENCE_NUM_THREADS"] = str(torch.get_num_threads())
        try:
            self.compiled = core.compile_model(str(path), target, config)
        except Exception as err:  # noqa: BLE001 - OpenVINO raises its own exception types
            raise ExportError(f"{path}: OpenVINO cannot load it on {target} ({first_line(err)})") from None
        self.names = [p.get_any_name() for p in self.compiled.inputs]
        self._local = threading.local()  # an InferRequest must not be shared between threads

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        feeds = {n: to_numpy(x) for n, x in zip(self.names, inputs)}
        try:
            result = request.infer(feeds)
        except RuntimeError as err:
            shape = tuple(inputs[0].shape)
            raise ExportError(f"OpenVINO refused an input of shape {shape}: {first_line(err)}") from None
        return torch.from_numpy(result[self.compiled.output(0)].copy())


def load_openvino(path: str | Path, card: ModelCard, device: str = "cpu") -> OpenVinoRunner:
    return OpenVinoRunner(path, card, device)

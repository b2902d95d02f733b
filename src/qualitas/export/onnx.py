"""ONNX export (``torch.onnx.export``, the ``torch.export``-based exporter) and an ONNX
Runtime runner.

Batch is always dynamic; height/width and clip length are exported with ``Dim.AUTO`` when
asked for, and the card records what stayed dynamic (read back from the graph inputs).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from qualitas.errors import DependencyError, UsageError
from qualitas.export.card import ModelCard
from qualitas.export.common import ExportError, axes_of, card_for_shapes, to_numpy, torch_dynamic_shapes

FILE = "model.onnx"
FALLBACK_TORCH_OPSET = 18
"""The opset ``torch.onnx.export(dynamo=True)`` builds graphs in (torch 2.5-2.14), if torch
does not say."""


def opset_range() -> tuple[int, int]:
    """ONNX opsets an export can target here: from the opset torch's exporter builds in
    (its op library is written for it; older targets are silently left at it, so they
    are refused) to the newest the installed ``onnx`` package knows."""
    onnx = _require("onnx")
    try:
        from torch.onnx._internal.exporter._constants import TORCHLIB_OPSET as low
    except ImportError:  # a private constant: other torch versions may move it
        low = FALLBACK_TORCH_OPSET
    return int(low), int(onnx.defs.onnx_opset_version())


def check_opset(opset: int | None) -> int | None:
    """``opset`` if the installed torch/onnx can export it, else a one-line :class:`UsageError`."""
    if opset is None:
        return None
    low, high = opset_range()
    if not low <= int(opset) <= high:
        import onnx

        raise UsageError(
            f"--opset {opset} is not supported here: torch {torch.__version__.split('+')[0]} exports "
            f"opsets {low}..{high} (onnx {onnx.__version__} knows up to {high})"
        )
    return int(opset)


def export_onnx(
    model: nn.Module,
    card: ModelCard,
    folder: Path,
    example: tuple[torch.Tensor, ...],
    *,
    dynamic: set[str],
    opset: int | None = None,
    file: str = FILE,
) -> ModelCard:
    """Write ``folder/file``; returns the card with the input shapes and export details."""
    _require("onnx", "onnxscript")
    opset = check_opset(opset)
    kwargs = {} if opset is None else {"opset_version": opset}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # exporter chatter (deprecations, dispatch notes)
            program = torch.onnx.export(
                model,
                example,
                dynamo=True,
                input_names=list(card.input.names),
                output_names=[card.output.name],
                dynamic_shapes=torch_dynamic_shapes(card, dynamic),
                verbose=False,
                **kwargs,
            )
    except Exception as err:  # noqa: BLE001 - any exporter failure becomes one clear line
        raise ExportError(f"ONNX export failed: {type(err).__name__}: {_first_line(err)}") from err
    path = Path(folder) / file
    program.save(str(path))
    proto = program.model_proto
    inputs = {i.name: i for i in proto.graph.input}
    dims = inputs[card.input.names[0]].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    observed = {name for name, ax in axes_of(card).items() if isinstance(shape[ax], str)}
    outputs = [o.name for o in proto.graph.output]
    if list(inputs) != list(card.input.names) or outputs[:1] != [card.output.name]:
        raise ExportError(
            f"ONNX export named the graph {list(inputs)} -> {outputs}, not "
            f"{list(card.input.names)} -> [{card.output.name!r}]"
        )
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset_used != opset:
        # The exporter falls back to its own opset when the version conversion fails.
        raise ExportError(f"ONNX export asked for opset {opset} but the exporter wrote opset {opset_used}")
    return card_for_shapes(card, observed, example).with_export(
        format="onnx", file=file, opset=opset_used, exporter="torch.onnx.export(dynamo=True)"
    )


class OnnxRunner:
    """ONNX Runtime session; CUDA provider when ``device`` is ``cuda`` and available."""

    format = "onnx"

    def __init__(self, path: str | Path, card: ModelCard, device: str = "cpu") -> None:
        ort = _require("onnxruntime")
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise DependencyError(
                    "ONNX Runtime has no CUDA provider here: install onnxruntime-gpu, or use --device cpu"
                )
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ExportError(f"{path}: ONNX Runtime cannot load it ({_first_line(err)})") from None
        self.names = [i.name for i in self.session.get_inputs()]
        if self.names != list(card.input.names):
            raise ExportError(
                f"{path}: graph inputs {self.names} do not match the card's {list(card.input.names)}"
            )
        self.output = self.session.get_outputs()[0].name
        if self.output != card.output.name:
            raise ExportError(f"{path}: graph output {self.output!r} is not the card's {card.output.name!r}")

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feeds = {n: to_numpy(x) for n, x in zip(self.names, inputs)}
        try:
            (out,) = self.session.run([self.output], feeds)
        except Exception as err:  # noqa: BLE001 - onnxruntime's exception types are not public
            shape = tuple(inputs[0].shape)
            raise ExportError(f"ONNX Runtime refused an input of shape {shape}: {_first_line(err)}") from None
        return torch.from_numpy(out)


def load_onnx(path: str | Path, card: ModelCard, device: str = "cpu") -> OnnxRunner:
    return OnnxRunner(path, card, device)


def _require(*modules: str):
    import importlib

    mod = None
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            raise DependencyError(
                f"ONNX export/runtime needs '{name}': pip install 'qualitas[export]'"
            ) from None
    return mod


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__

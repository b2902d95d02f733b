"""The export formats: name -> (exporter, runner loader, default file).

Explicit imports, no string-built module names; a new format is one entry here plus its
module (``export_<format>(model, card, folder, example, *, dynamic, opset) -> card`` and
``load_<format>(path, card, device) -> runner``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qualitas.export import exported_program, onnx, openvino, saved_model, torchscript
from qualitas.registry import Registry


@dataclass(frozen=True)
class Format:
    name: str
    file: str
    export: Callable
    load: Callable
    suffix: str
    """What identifies a file of this format on disk (``.onnx``, ``.pt``, ``.pt2``, ``.xml``);
    empty for folder formats (SavedModel), which load through their export folder."""


FORMATS: Registry[Format] = Registry("format")
FORMATS.add("onnx", Format("onnx", onnx.FILE, onnx.export_onnx, onnx.load_onnx, ".onnx"))
FORMATS.add(
    "torchscript",
    Format(
        "torchscript", torchscript.FILE, torchscript.export_torchscript, torchscript.load_torchscript, ".pt"
    ),
)
FORMATS.add(
    "exported_program",
    Format(
        "exported_program",
        exported_program.FILE,
        exported_program.export_program,
        exported_program.load_exported_program,
        ".pt2",
    ),
)
FORMATS.add(
    "openvino", Format("openvino", openvino.FILE, openvino.export_openvino, openvino.load_openvino, ".xml")
)
FORMATS.add(
    "saved_model",
    Format("saved_model", saved_model.FILE, saved_model.export_saved_model, saved_model.load_saved_model, ""),
)


def format_of_file(suffix: str) -> Format | None:
    """The format whose files end in ``suffix`` (case-insensitive), if any."""
    for name in FORMATS.names():
        fmt = FORMATS.get(name)
        if fmt.suffix and fmt.suffix == suffix.lower():
            return fmt
    return None

"""``torch.export`` export (an ``ExportedProgram`` saved as ``model.pt2``) and its runner.

Batch is a shared ``Dim`` (full-reference inputs must agree); height/width and clip length
use ``Dim.AUTO`` when dynamic, and the card records what stayed symbolic. The ``.pt2``
archive is read with ``torch.export.load``, which unpickles: load only files you trust.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from qualitas.errors import first_line
from qualitas.export.card import ModelCard
from qualitas.export.common import ExportError, card_for_shapes, observed_dynamic, torch_dynamic_shapes

FILE = "model.pt2"


def export_program(
    model: nn.Module,
    card: ModelCard,
    folder: Path,
    example: tuple[torch.Tensor, ...],
    *,
    dynamic: set[str],
    opset: int | None = None,
) -> ModelCard:
    """``torch.export.export`` + ``torch.export.save`` to ``folder/model.pt2``."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, example, dynamic_shapes=torch_dynamic_shapes(card, dynamic))
    except Exception as err:  # noqa: BLE001 - any export failure becomes one clear line
        raise ExportError(f"torch.export failed: {type(err).__name__}: {first_line(err)}") from err
    torch.export.save(program, str(Path(folder) / FILE))
    user = set(program.graph_signature.user_inputs)
    first = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name in user)
    observed = observed_dynamic(card, tuple(first.meta["val"].shape))
    return card_for_shapes(card, observed, example).with_export(
        format="exported_program", file=FILE, exporter="torch.export.export", torch_version=torch.__version__
    )


class ExportedProgramRunner:
    format = "exported_program"

    def __init__(self, path: str | Path, card: ModelCard, device: str = "cpu") -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.load(str(path))
        except (RuntimeError, ValueError, OSError, KeyError) as err:
            raise ExportError(f"{path}: not a loadable exported program ({first_line(err)})") from None
        self.device = torch.device(device)
        if self.device.type != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, self.device)
        self.module = program.module()

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        try:
            out = self.module(*(x.to(self.device, torch.float32) for x in inputs))
        except AssertionError as err:  # the program's shape guards (see docs/export.md)
            shape = tuple(inputs[0].shape)
            raise ExportError(f"the exported program refuses an input of shape {shape} ({err})") from None
        return out.float().cpu()


def load_exported_program(path: str | Path, card: ModelCard, device: str = "cpu") -> ExportedProgramRunner:
    return ExportedProgramRunner(path, card, device)

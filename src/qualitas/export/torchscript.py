"""TorchScript export (``torch.jit.trace``) and its runner.

Tracing records the operations of one forward pass; the qualitas models have no
data-dependent control flow, and the sizes they reshape with are traced as sizes, so
batch, height/width and (without TSM) clip length stay dynamic. ``--verify`` checks that
at other sizes. ``torch.jit`` is deprecated upstream in favour of ``torch.export``
(``--format exported_program``) but still the format many C++/mobile deployments load.

A TorchScript file holds TorchScript code: load only files you trust.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from qualitas.errors import first_line
from qualitas.export.card import ModelCard
from qualitas.export.common import ExportError, card_for_shapes

FILE = "model.pt"


def export_torchscript(
    model: nn.Module,
    card: ModelCard,
    folder: Path,
    example: tuple[torch.Tensor, ...],
    *,
    dynamic: set[str],
    opset: int | None = None,
) -> ModelCard:
    """Trace ``model`` on ``example`` and save ``folder/model.pt``."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # deprecation and tracer warnings
            traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, str(Path(folder) / FILE))
    except Exception as err:  # noqa: BLE001 - any tracer failure becomes one clear line
        raise ExportError(f"TorchScript trace failed: {type(err).__name__}: {err}") from err
    return card_for_shapes(card, dynamic, example).with_export(
        format="torchscript", file=FILE, exporter="torch.jit.trace"
    )


class TorchScriptRunner:
    format = "torchscript"

    def __init__(self, path: str | Path, card: ModelCard, device: str = "cpu") -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.module = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError, OSError) as err:
            raise ExportError(f"{path}: not a loadable TorchScript file ({first_line(err)})") from None
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*(x.to(self.device, torch.float32) for x in inputs)).float().cpu()


def load_torchscript(path: str | Path, card: ModelCard, device: str = "cpu") -> TorchScriptRunner:
    return TorchScriptRunner(path, card, device)

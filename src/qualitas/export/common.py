"""Pieces every exporter shares: example inputs, dynamic axes, and the runner contract.

A *runner* is what each format module returns from ``load_<format>(path, card, device)``:
a callable ``runner(*inputs) -> Tensor`` taking the graph inputs as ``float32`` tensors
(``dist`` and, for full-reference models, ``ref``; ``(B,3,H,W)`` or ``(B,T,3,H,W)`` in
``[0, 1]``) and returning the raw graph output on the CPU: ``(B,)`` scores or ``(B, N)``
probabilities. Verification and the scoring runtime use nothing else.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

import torch

from qualitas.errors import QualitasError, UsageError
from qualitas.export.card import ModelCard


class ExportError(QualitasError):
    """An export, a load of an exported file, or a parity check failed (exit status 1)."""


DEFAULT_DYNAMIC_HW = (128, 128)
"""Example height/width when the model takes any size (the size policy fixes none)."""
MAX_BATCH = 4096


class Runner(Protocol):
    """A loaded exported model: graph inputs in, raw output ``(B,)`` / ``(B, N)`` out (CPU)."""

    format: str

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor: ...


def input_shape(
    card: ModelCard, batch: int, hw: tuple[int, int] | None = None, frames: int | None = None
) -> tuple:
    """Shape of one graph input: ``(B,3,H,W)`` or ``(B,T,3,H,W)``."""
    h, w = hw or example_hw(card)
    c = card.input.channels
    if card.video:
        t = frames or card.input.num_frames or (card.clips.num_frames if card.clips else 8)
        return (batch, t, c, h, w)
    return (batch, c, h, w)


def example_hw(card: ModelCard) -> tuple[int, int]:
    if card.input.height and card.input.width:
        return int(card.input.height), int(card.input.width)
    size = card.input.size_policy
    if size.get("mode") in ("resize", "crop", "pad") and size.get("size"):
        return int(size["size"][0]), int(size["size"][1])
    if size.get("mode") == "fragments":
        side = int(size.get("grid", 7)) * int(size.get("patch", 32))
        return side, side
    return DEFAULT_DYNAMIC_HW


def example_inputs(
    card: ModelCard, batch: int = 2, *, seed: int = 0, **shape: Any
) -> tuple[torch.Tensor, ...]:
    """Random ``[0, 1]`` inputs for every graph input (same shape for ``dist`` and ``ref``)."""
    g = torch.Generator().manual_seed(seed)
    s = input_shape(card, batch, **shape)
    return tuple(torch.rand(s, generator=g) for _ in card.input.names)


def axes_of(card: ModelCard) -> dict[str, int]:
    """Axis index of each named dimension of a graph input."""
    if card.video:
        return {"batch": 0, "frames": 1, "height": 3, "width": 4}
    return {"batch": 0, "height": 2, "width": 3}


def wanted_dynamic(card: ModelCard, dynamic: bool) -> set[str]:
    """Dimensions to export as dynamic: batch always; height/width with ``--dynamic`` or
    when the size policy does not fix them; clip length with ``--dynamic`` unless the
    model needs exactly ``num_frames`` (TSM)."""
    out = {"batch"}
    if dynamic or card.input.size_policy.get("mode", "none") == "none":
        out |= {"height", "width"}
    if card.video and dynamic and not (card.clips and card.clips.fixed_num_frames):
        out.add("frames")
    return out


def torch_dynamic_shapes(card: ModelCard, names: set[str]) -> tuple[dict[int, Any], ...]:
    """``dynamic_shapes`` for ``torch.export``: one shared ``batch`` Dim (FR inputs must
    agree), ``Dim.AUTO`` elsewhere so that a model that needs a fixed size (e.g. a GRU
    over frames) specialises instead of failing; :func:`observed_dynamic` reads back what
    stayed dynamic."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=MAX_BATCH)
    spec: dict[int, Any] = {}
    for name, axis in axes_of(card).items():
        if name in names:
            spec[axis] = batch if name == "batch" else Dim.AUTO
    return tuple(dict(spec) for _ in card.input.names)


def observed_dynamic(card: ModelCard, shape: Sequence[Any]) -> set[str]:
    """Named dims that are symbolic (not ``int``) in an exported input shape."""
    return {name for name, axis in axes_of(card).items() if not isinstance(shape[axis], int)}


def card_for_shapes(card: ModelCard, dynamic: set[str], example: tuple[torch.Tensor, ...]) -> ModelCard:
    """Record in the card which dims are dynamic; fixed ones get the exported size."""
    shape = tuple(example[0].shape)
    axes = axes_of(card)
    changes: dict[str, Any] = {
        "dynamic_batch": "batch" in dynamic,
        "dynamic_hw": "height" in dynamic and "width" in dynamic,
        "height": None if "height" in dynamic else int(shape[axes["height"]]),
        "width": None if "width" in dynamic else int(shape[axes["width"]]),
    }
    if card.video:
        changes["num_frames"] = None if "frames" in dynamic else int(shape[axes["frames"]])
    return card.with_input(**changes)


IO_PRESETS = ("default", "triton")
"""``--io-names``: ``default`` keeps the card's names (``dist``/``ref``, ``score``/``probs``);
``triton`` names inputs ``INPUT__0``, ``INPUT__1``, … and the output ``OUTPUT__0``, the
positional convention of Triton's PyTorch backend that serving stacks also use for ONNX."""
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")


def with_io_names(
    card: ModelCard,
    preset: str = "default",
    input_names: Sequence[str] | None = None,
    output_name: str | None = None,
) -> ModelCard:
    """The card with the graph's input/output names chosen for the export.

    ``preset`` (one of :data:`IO_PRESETS`) gives the base names; ``input_names`` (one per
    graph input, in order: ``dist`` then ``ref``) and ``output_name`` override it. The
    exporters name the graph after the card and the runners read the names back from the
    file (ONNX, OpenVINO) or the card, so renamed files score like any other export.
    Bad names are a one-line :class:`UsageError`.
    """
    if preset not in IO_PRESETS:
        raise UsageError(f"--io-names must be one of {', '.join(IO_PRESETS)}, got '{preset}'")
    n = len(card.input.names)
    inputs = list(card.input.names)
    output = card.output.name
    if preset == "triton":
        inputs = [f"INPUT__{i}" for i in range(n)]
        output = "OUTPUT__0"
    if input_names is not None:
        inputs = [str(v) for v in input_names]
        if len(inputs) != n:
            want = "dist, ref" if card.full_reference else "dist"
            raise UsageError(
                f"this model has {n} input{'s' if n > 1 else ''} ({want}); got {len(inputs)} input name(s)"
            )
    if output_name is not None:
        output = str(output_name)
    for name in [*inputs, output]:
        if not _NAME_RE.match(name):
            raise UsageError(
                f"invalid graph name {name!r}: letters, digits and _ . : - only, starting with a letter or _"
            )
    if len(set(inputs + [output])) != n + 1:
        raise UsageError(f"graph names must be distinct, got inputs {inputs} and output {output!r}")
    return replace(
        card, input=replace(card.input, names=tuple(inputs)), output=replace(card.output, name=output)
    )


def to_numpy(x: torch.Tensor):
    return x.detach().to("cpu", torch.float32).contiguous().numpy()


def to_mos(card: ModelCard, raw: torch.Tensor) -> torch.Tensor:
    """Raw graph output -> scores ``(B,)`` in MOS units, as the card says.

    Distribution heads: expected score ``probs @ bins``; score heads: ``y * scale + shift``
    (the inverse of the MOS normalisation fitted in training).
    """
    raw = raw.float()
    if card.output.kind not in ("score", "distribution"):
        raise ExportError(
            f"model '{card.name}' is a {card.output.kind} model, not a quality scorer: use qualitas predict"
        )
    if card.output.kind == "distribution":
        bins = torch.tensor(card.output.bins, dtype=torch.float32, device=raw.device)
        if raw.ndim != 2 or raw.shape[1] != bins.numel():
            raise ExportError(
                f"model output {tuple(raw.shape)} does not match the card's {bins.numel()} bins"
            )
        return raw @ bins
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim != 1:
        raise ExportError(f"model output {tuple(raw.shape)} is not one score per item")
    return raw * card.output.scale + card.output.shift


@contextlib.contextmanager
def quiet_torch_logs() -> Iterator[None]:
    """Keep torch's internal log records (torch.export / dynamo / FX warnings such as
    "Unable to find user code corresponding to …" followed by a whole FX graph dump) off
    the console while exporting: they describe tracer internals, not the user's model.
    Errors still get through; the export's own checks report what matters."""
    names = ["torch"] + [n for n in logging.root.manager.loggerDict if n.startswith("torch.")]
    saved = [(lg, lg.level) for lg in map(logging.getLogger, names)]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    # The graph dumps themselves are print()ed (GraphModule.print_readable): captured and
    # kept at debug level (logger "qualitas.export") for whoever needs them.
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)
        if captured.getvalue().strip():
            logging.getLogger("qualitas.export").debug(
                "torch output while exporting:\n%s", captured.getvalue()
            )

"""``qualitas export``: a trained run or checkpoint -> ONNX / TorchScript / torch.export /
OpenVINO / TensorFlow SavedModel, with ``model.json``, optional parity check and int8
quantisation.

Exit status: 0 exported (and, with ``--verify``, parity within tolerance), 1 export or
parity failure (the difference is printed), 2 usage errors.
"""

from __future__ import annotations

import argparse
import sys

HELP = "export a trained model to ONNX/TorchScript/torch.export/OpenVINO/TF SavedModel"
"""One line for ``qualitas --help``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help=HELP,
        description=(
            "Export the model of a training run (its best checkpoint) or a .ckpt. Writes the model "
            "file and model.json (the card the runtime reads) into --out."
        ),
    )
    p.add_argument("source", metavar="RUN_DIR_OR_CKPT", help="training run directory or checkpoint (.ckpt)")
    p.add_argument(
        "--format",
        required=True,
        choices=("onnx", "torchscript", "exported_program", "openvino", "saved_model"),
        help="onnx (.onnx, ONNX Runtime), torchscript (.pt), exported_program (torch.export .pt2), "
        "openvino (IR .xml/.bin), saved_model (TensorFlow, via onnx2tf in its own environment: make tf-env)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare with PyTorch on random and real inputs; fail when max |diff| > --tolerance",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="parity tolerance (default 1e-4, fp32)")
    p.add_argument(
        "--opset",
        type=int,
        metavar="N",
        help="ONNX opset (onnx, openvino, saved_model; default: the exporter's; the range torch and "
        "onnx support here is checked)",
    )
    p.add_argument(
        "--io-names",
        choices=("default", "triton"),
        default="default",
        help="graph names: default dist[,ref] -> score|probs; triton INPUT__0[,INPUT__1] -> OUTPUT__0",
    )
    p.add_argument(
        "--input-name",
        action="append",
        metavar="NAME",
        help="name of a graph input (repeat for full-reference models: dist first, then ref)",
    )
    p.add_argument("--output-name", metavar="NAME", help="name of the graph output")
    p.add_argument(
        "--dynamic",
        action="store_true",
        help="dynamic height/width (and clip length where the model allows); batch is always dynamic",
    )
    p.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="fixed graph height and width for a model that takes any size (e.g. the importance "
        "predictor at the frame size it will serve; saved_model converts such models only at a fixed "
        "size); other sizes are resized to it when scoring",
    )
    p.add_argument(
        "--quantize",
        choices=("int8", "int8-dynamic"),
        help="onnx: int8 with ONNX Runtime (static, calibrated on the verification inputs; or dynamic); "
        "reports the score change",
    )
    p.add_argument("--name", help="score name in outputs (default: the run's name)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from qualitas.errors import UsageError
    from qualitas.export.pipeline import export_model

    if not args.tolerance > 0:
        raise UsageError(f"--tolerance must be > 0, got {args.tolerance}")
    result = export_model(
        args.source,
        args.format,
        args.out,
        opset=args.opset,
        dynamic=args.dynamic,
        verify=args.verify,
        quantize=args.quantize,
        tolerance=args.tolerance,
        name=args.name,
        fail_on_mismatch=False,
        io_names=args.io_names,
        input_names=args.input_name,
        output_name=args.output_name,
        input_size=tuple(args.input_size) if args.input_size else None,
    )
    card = result.card
    shape = _shape_text(card)
    print(f"exported {card.name} ({card.format}) -> {result.path}  graph {shape}")
    if result.parity is not None:
        print(result.parity.summary())
    if result.quantization is not None:
        print(result.quantization.summary())  # type: ignore[attr-defined]
    print(f"card: {result.folder / 'model.json'}", file=sys.stderr)
    if result.parity is not None and not result.parity.ok:
        print(
            f"qualitas export: error: parity check failed: max |diff| {result.parity.max_abs_diff:.3g} > "
            f"{args.tolerance:g} ({card.format} vs PyTorch)",
            file=sys.stderr,
        )
        return 1
    return 0


def _shape_text(card) -> str:
    i = card.input
    h = "H" if i.height is None else str(i.height)
    w = "W" if i.width is None else str(i.width)
    dims = (
        ["B" if i.dynamic_batch else "1"]
        + ([("T" if i.num_frames is None else str(i.num_frames))] if card.video else [])
        + [str(i.channels), h, w]
    )
    one = f"({','.join(dims)})"
    inputs = ", ".join(f"{n} {one}" for n in i.names)
    return f"{inputs} -> {', '.join(card.output.names or (card.output.name,))}"

"""The ``qualitas`` command: a thin dispatcher over one module per sub-command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qualitas import __version__
from qualitas.errors import QualitasError

# Each sub-command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``.
_COMMANDS = (
    "score",
    "batch",
    "serve",
    "metrics",
    "models",
    "train",
    "eval",
    "predict",
    "export",
    "checkpoint",
    "data",
    "importance",
)


def _command_module(name: str):
    # Explicit, lazy imports: `qualitas metrics` must not pay for importing lightning.
    if name == "score":
        from qualitas.cli import score as mod
    elif name == "batch":
        from qualitas.cli import batch as mod
    elif name == "serve":
        from qualitas.cli import serve as mod
    elif name == "metrics":
        from qualitas.cli import metrics_cmd as mod
    elif name == "models":
        from qualitas.cli import models_cmd as mod
    elif name == "train":
        from qualitas.cli import train as mod
    elif name == "eval":
        from qualitas.cli import evaluate as mod
    elif name == "predict":
        from qualitas.cli import predict as mod
    elif name == "export":
        from qualitas.cli import export as mod
    elif name == "checkpoint":
        from qualitas.cli import checkpoint as mod
    elif name == "data":
        from qualitas.cli import data as mod
    elif name == "importance":
        from qualitas.cli import importance as mod
    else:  # pragma: no cover - guarded by argparse choices
        raise KeyError(name)
    return mod


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: one line, exit status 2
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qualitas",
        description="Perceptual quality of images and video: score, train, evaluate, export.",
    )
    parser.add_argument("--version", action="version", version=f"qualitas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMANDS:
        if only is not None and name != only:
            # Register a placeholder so `qualitas --help` lists every command cheaply.
            sub.add_parser(name, help=_HELP[name], add_help=False)
            continue
        _command_module(name).add_parser(sub)
    return parser


_HELP = {
    "score": "score images/videos with metrics or models (FR with --ref, else NR)",
    "batch": "score a catalog (folder or manifest) on Ray into resumable JSONL/Parquet shards",
    "serve": "HTTP scoring service (POST /score, /healthz, /metrics)",
    "metrics": "list the available metrics and their properties",
    "models": "list backbones and where their pretrained weights are (offline)",
    "train": "train a quality, classification or segmentation model from a YAML config",
    "eval": "evaluate a trained model: SROCC/PLCC (quality) or top-1/mIoU (classification/segmentation)",
    "predict": "classify / segment images, folders or video frames with a trained or exported model",
    "export": "export a trained model to ONNX/TorchScript/torch.export/OpenVINO",
    "checkpoint": "show a checkpoint, rename its keys, strip it to the model weights",
    "data": "dataset converters, frame extraction, manifest checks, synthetic ladders",
    "importance": "macroblock importance maps: label, apply",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `--debug` is global but users put it anywhere (`qualitas score x --debug`): accept both.
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    # Build only the chosen sub-command's parser (imports stay lazy).
    chosen = next((a for a in argv if a in _COMMANDS), None)
    parser = build_parser(only=chosen)
    if chosen is None:
        args = parser.parse_args(argv)
        parser.print_help()
        return 2
    args = parser.parse_args(argv)
    args.debug = debug
    try:
        return int(args.func(args) or 0)
    except QualitasError as err:
        if args.debug:
            raise
        print(f"qualitas {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("qualitas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

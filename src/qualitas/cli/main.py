"""The ``qualitas`` command: a thin dispatcher over one module per sub-command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from qualitas.errors import QualitasError
from qualitas.version import __version__

# The command table: one line per command, name -> the module implementing it. Each module
# defines ``HELP`` (its line in ``qualitas --help``), ``add_parser(subparsers)`` and
# ``run(args) -> int``. Modules are imported only when needed (`qualitas metrics` must not
# pay for importing lightning; the modules import heavy libraries inside their functions).
COMMANDS: dict[str, str] = {
    "score": "qualitas.cli.score",
    "batch": "qualitas.cli.batch",
    "serve": "qualitas.cli.serve",
    "metrics": "qualitas.cli.metrics_cmd",
    "models": "qualitas.cli.models_cmd",
    "train": "qualitas.cli.train",
    "pretrain": "qualitas.cli.pretrain",
    "probe": "qualitas.cli.probe",
    "eval": "qualitas.cli.evaluate",
    "predict": "qualitas.cli.predict",
    "export": "qualitas.cli.export",
    "checkpoint": "qualitas.cli.checkpoint",
    "data": "qualitas.cli.data",
    "importance": "qualitas.cli.importance",
}
_COMMANDS = tuple(COMMANDS)  # the old name


def _command_module(name: str):
    return importlib.import_module(COMMANDS[name])


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
    for name in COMMANDS:
        if only is not None and name != only:
            # Register a placeholder so `qualitas --help` lists every command cheaply.
            sub.add_parser(name, help=_command_module(name).HELP, add_help=False)
            continue
        _command_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `--debug` is global but users put it anywhere (`qualitas score x --debug`): accept both.
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    # Build only the chosen sub-command's parser (imports stay lazy).
    chosen = next((a for a in argv if a in COMMANDS), None)
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

"""Pieces several commands share: their own log lines on stderr, ``CONFIG -o`` / ``--resume``."""

from __future__ import annotations

import argparse
import logging


def log_messages_to_stderr() -> None:
    """qualitas' own INFO messages on stderr, bare (Lightning configures its own logger)."""
    log = logging.getLogger("qualitas")
    # One such handler, on the current sys.stderr (a second command in the same process, e.g.
    # a test, replaces the first instead of printing every line twice).
    for h in [h for h in log.handlers if getattr(h, "_qualitas_cli", False)]:
        log.removeHandler(h)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._qualitas_cli = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def config_from_args(args: argparse.Namespace):
    """The config of ``CONFIG [-o k=v ...]``, or of the run being resumed (``--resume RUN``)."""
    from qualitas.errors import UsageError
    from qualitas.training.config import load_config
    from qualitas.training.run import config_for_resume

    if args.config is None and args.resume is None:
        raise UsageError("give a CONFIG file (or --resume RUN_DIR)")
    if args.resume is not None:
        return config_for_resume(args.config, args.resume, args.override)
    return load_config(args.config, args.override)

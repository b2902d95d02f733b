"""User-facing errors.

Every error a user can cause (bad file, bad config, bad flag) is a ``QualitasError``
with a one-line message; the CLI prints it without a traceback (unless ``--debug``).
"""

from __future__ import annotations


class QualitasError(Exception):
    """Base class for errors caused by user input; ``str(err)`` is one line."""

    exit_code = 1


class UsageError(QualitasError):
    """Bad command-line usage (exit status 2)."""

    exit_code = 2


class ConfigError(QualitasError):
    """Invalid configuration: unknown key or component, wrong type."""

    exit_code = 2


class MediaError(QualitasError):
    """A media file that cannot be read, decoded or paired."""


class DependencyError(QualitasError):
    """An optional dependency or external tool (e.g. libvmaf) is missing."""


def one_line(err: BaseException) -> str:
    """Collapse an exception message to a single line (for per-file error entries)."""
    msg = str(err).strip() or type(err).__name__
    return " ".join(msg.split())


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception message (library errors such as torch.load's
    run to many lines; the first says what went wrong), else the exception's type name."""
    for line in str(err).splitlines():
        if line.strip():
            return " ".join(line.split())
    return type(err).__name__

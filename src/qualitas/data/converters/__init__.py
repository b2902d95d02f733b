"""Dataset converters: public release layouts -> the unified manifest (docs/data.md).

``convert(format, src)`` runs the registered converter, checks that every file a row
names exists, rebases paths onto the manifest root, and reports missing files with a
count instead of dropping rows silently (they are left out only with ``skip_missing``).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

# Explicit imports: each module registers its converters in CONVERTERS.
from qualitas.data.converters import images_fr, images_nr, platforms, videos  # noqa: F401
from qualitas.data.converters.base import CONVERTERS, ConvertContext, Converter, ConvertError
from qualitas.data.manifest import Record

__all__ = ["CONVERTERS", "ConvertError", "ConvertResult", "Converter", "convert", "list_converters"]

_PATH_FIELDS = ("path", "ref", "better", "worse")


@dataclass
class ConvertResult:
    """Rows written plus what went wrong with them."""

    converter: Converter
    records: list[Record]
    root: Path
    missing_rows: int = 0
    """Rows naming at least one file that does not exist."""
    missing_examples: list[str] = field(default_factory=list)
    skipped: int = 0
    """Rows left out because of ``skip_missing``."""
    notes: list[str] = field(default_factory=list)


def list_converters() -> list[Converter]:
    return [CONVERTERS.get(n) for n in CONVERTERS.names()]


def convert(
    fmt: str,
    src: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    skip_missing: bool = False,
    max_examples: int = 5,
) -> ConvertResult:
    """Convert the dataset at ``src`` (its folder, or one label file) with converter ``fmt``.

    Paths in the result are relative to ``root`` (default: the dataset folder), which
    must contain the dataset folder.
    """
    conv = CONVERTERS.get(fmt)
    src_path = Path(src)
    if not src_path.exists():
        raise ConvertError(f"dataset folder not found: {src_path}")
    label_file = src_path if src_path.is_file() else None
    folder = src_path.parent if label_file else src_path
    root_path = Path(root) if root is not None else folder
    prefix = os.path.relpath(folder.resolve(), root_path.resolve()).replace(os.sep, "/")
    if prefix == ".." or prefix.startswith("../"):
        raise ConvertError(f"--root {root_path} does not contain the dataset folder {folder}")
    ctx = ConvertContext(src=folder, label_file=label_file)
    records = conv(ctx)
    result = ConvertResult(converter=conv, records=[], root=root_path, notes=list(ctx.notes))
    root_abs = root_path.resolve()
    for rec in records:
        if not conv.higher_is_better:
            # Say it on every row: DMOS rows mixed into another manifest must not lose it.
            rec.extra.setdefault("higher_is_better", False)
        gone = []
        for f in _PATH_FIELDS:
            value = getattr(rec, f)
            if not value:
                continue
            if posixpath.isabs(value):
                # Absolute paths (some JSON exports have them) must sit under the root.
                rel = os.path.relpath(Path(value).resolve(), root_abs).replace(os.sep, "/")
                if rel == ".." or rel.startswith("../"):
                    gone.append(f"{value} (outside the root)")
                    continue
                if not Path(value).exists():
                    gone.append(value)
                setattr(rec, f, rel)
            else:
                rebased = posixpath.normpath(posixpath.join(prefix, value))
                if rebased == ".." or rebased.startswith("../"):
                    # A label file pointing outside the dataset: never let it through as valid.
                    gone.append(f"{value} (outside the root)")
                elif not (folder / value).exists():
                    gone.append(value)
                setattr(rec, f, rebased)
        if gone:
            result.missing_rows += 1
            if len(result.missing_examples) < max_examples:
                result.missing_examples.append(", ".join(gone))
            if skip_missing:
                result.skipped += 1
                continue
        result.records.append(rec)
    return result

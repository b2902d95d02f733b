"""Writers for scoring results: JSON, CSV and a terminal table.

The schema is documented in docs/output-schema.md. Non-finite numbers (PSNR of identical
inputs is ``+inf``) are not valid JSON, so every float goes through :func:`json_number`:
``+inf -> "Infinity"``, ``-inf -> "-Infinity"``, ``nan -> "NaN"``. These strings parse back
with Python's ``float(s)`` and JavaScript's ``Number(s)``; CSV cells use the same spelling.
Files are written atomically (temp file + rename), so an interrupted run leaves no
half-written output.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qualitas.errors import UsageError
from qualitas.files import atomic_write_text
from qualitas.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from qualitas.metrics.base import MetricInfo
    from qualitas.runtime.score import Result

FORMATS = ("table", "json", "csv")


def json_number(value: float | int | None) -> float | int | str | None:
    """A JSON-safe number: finite values unchanged, non-finite ones as strings (see module doc)."""
    if value is None or isinstance(value, bool | int):
        return value
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def json_safe(obj: Any) -> Any:
    """Recursively apply :func:`json_number` to every float inside dicts/lists/tuples."""
    if isinstance(obj, float):
        return json_number(obj)
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def metric_header(infos: Mapping[str, MetricInfo]) -> dict[str, dict]:
    """The top-level ``"metrics"`` object: properties of every metric in the results."""
    return {
        name: {
            "full_reference": info.full_reference,
            "higher_is_better": info.higher_is_better,
            "range": [info.range[0], info.range[1]],
            "input": info.input,
        }
        for name, info in infos.items()
    }


def to_document(
    results: Sequence[Result], infos: Mapping[str, MetricInfo], options: Mapping[str, Any] | None = None
) -> dict:
    """The whole JSON document as plain Python objects (already JSON-safe)."""
    doc: dict[str, Any] = {"version": __version__, "metrics": metric_header(infos)}
    if options is not None:
        doc["options"] = dict(options)
    doc["results"] = [r.to_dict() for r in results]
    return json_safe(doc)


def format_json(
    results: Sequence[Result], infos: Mapping[str, MetricInfo], options: Mapping[str, Any] | None = None
) -> str:
    """Serialise results as a JSON document (strict JSON: ``allow_nan=False``)."""
    return json.dumps(to_document(results, infos, options), indent=2, allow_nan=False) + "\n"


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    v = json_number(value)
    return v if isinstance(v, str) else repr(float(v))


def metric_errors_text(metric_errors: Mapping[str, str]) -> str:
    """``{"ms_ssim": "why"}`` -> ``"ms_ssim: why"`` (several joined by ``"; "``), for CSV and tables."""
    return "; ".join(
        msg if msg.startswith(f"{name} ") or msg.startswith(f"{name}:") else f"{name}: {msg}"
        for name, msg in metric_errors.items()
    )


def format_csv(results: Sequence[Result], metric_names: Sequence[str]) -> str:
    """One row per input: ``path, ref, kind, <metrics...>, error, metric_errors`` (empty cell =
    not scored)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "ref", "kind", *metric_names, "error", "metric_errors"])
    for r in results:
        writer.writerow(
            [
                r.path,
                r.ref or "",
                r.kind or "",
                *(_cell(r.scores.get(m)) for m in metric_names),
                r.error or "",
                metric_errors_text(r.metric_errors),
            ]
        )
    return buf.getvalue()


def _fmt_score(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4f}"


def format_table(results: Sequence[Result], metric_names: Sequence[str]) -> str:
    """A fixed-width table for terminals; failed inputs (and failed metrics) show their error in
    the last column."""
    header = ["path", "kind", "size", "frames", *metric_names, "error"]
    rows = []
    for r in results:
        size = f"{r.width}x{r.height}" if r.width and r.height else "-"
        rows.append(
            [
                r.path,
                r.kind or "-",
                size,
                str(r.frames_scored),
                *(_fmt_score(r.scores.get(m)) for m in metric_names),
                r.error or metric_errors_text(r.metric_errors),
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    numeric = set(range(3, 4 + len(metric_names)))

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out).rstrip()

    lines = [line(header), line(["-" * w for w in widths])]
    lines += [line(row) for row in rows]
    return "\n".join(lines) + "\n"


def infer_format(path: str | os.PathLike) -> str:
    """Output format from a file extension: ``.json`` or ``.csv``; anything else is a usage error."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "csv"
    if suffix == ".jsonl":
        return "jsonl"
    raise UsageError(
        f"cannot tell the output format of '{path}': use a .json, .jsonl or .csv name, or --format"
    )


def infer_format_or_none(path: str | os.PathLike) -> str | None:
    """:func:`infer_format`, or None for an unknown extension."""
    try:
        return infer_format(path)
    except UsageError:
        return None


def render(
    fmt: str,
    results: Sequence[Result],
    infos: Mapping[str, MetricInfo],
    options: Mapping[str, Any] | None = None,
) -> str:
    """Render results in ``fmt`` (``table``/``json``/``csv``)."""
    if fmt == "json":
        return format_json(results, infos, options)
    if fmt == "csv":
        return format_csv(results, list(infos))
    if fmt == "table":
        return format_table(results, list(infos))
    raise UsageError(f"unknown output format '{fmt}'; choose from {', '.join(FORMATS)}")


def write_json(
    path: str | os.PathLike,
    results: Sequence[Result],
    infos: Mapping[str, MetricInfo],
    options: Mapping[str, Any] | None = None,
) -> None:
    """Write the JSON document atomically."""
    atomic_write_text(path, format_json(results, infos, options))


def write_csv(path: str | os.PathLike, results: Sequence[Result], metric_names: Sequence[str]) -> None:
    """Write the CSV table atomically."""
    atomic_write_text(path, format_csv(results, metric_names))

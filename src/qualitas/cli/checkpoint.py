"""``qualitas checkpoint show|rename|strip``: look inside checkpoints, rename key prefixes,
keep the model weights only (docs/checkpoints.md). The logic is
:mod:`qualitas.training.checkpoint_tools`; this module parses flags and prints."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "show a checkpoint, rename its keys, strip it to the model weights"
"""One line for ``qualitas --help``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "checkpoint",
        help=HELP,
        description="Checkpoint tools for Lightning .ckpt files, torch.save'd state dicts (.pt/.pth) and "
        ".safetensors. Files are read with torch.load(weights_only=True) and written atomically.",
    )
    sub = parser.add_subparsers(dest="checkpoint_command", metavar="ACTION", required=True)

    text = "keys, shapes, dtypes, parameter counts, hyper-parameters"
    p = sub.add_parser("show", help=text, description=f"Print a checkpoint's {text}.")
    p.add_argument("path", metavar="PATH", help="a .ckpt, .pt/.pth state dict or .safetensors file")
    p.add_argument("--json", action="store_true", help="print the whole report as one JSON document")
    p.add_argument("--all", action="store_true", help="list every tensor (default: the first 40)")
    p.set_defaults(func=run)

    text = "rename key prefixes by rules OLD=NEW (first matching rule wins)"
    p = sub.add_parser(
        "rename",
        help=text,
        description="Write a copy of PATH whose keys are renamed by prefix rules OLD=NEW (first matching rule wins).",
    )
    p.add_argument("path", metavar="PATH", help="a .ckpt, .pt/.pth state dict or .safetensors file")
    p.add_argument(
        "--rule",
        action="append",
        required=True,
        metavar="OLD=NEW",
        help="rename keys starting with OLD to start with NEW (NEW may be empty); repeatable",
    )
    p.add_argument("--out", required=True, help="file to write (.safetensors: the weights only)")
    p.set_defaults(func=run)

    text = "model weights only: drop optimizer/scheduler/EMA/teacher state, strip module./model."
    p = sub.add_parser("strip", help=text, description=f"Write the {text} prefixes.")
    p.add_argument("path", metavar="PATH", help="a .ckpt, .pt/.pth state dict or .safetensors file")
    p.add_argument(
        "--out", required=True, help="file to write: a plain state dict (.pt/.pth, or .safetensors)"
    )
    p.add_argument(
        "--keep",
        metavar="PREFIX",
        help="keep only keys under PREFIX, relative to it (e.g. features.backbone.net. for the backbone)",
    )
    p.add_argument(
        "--drop",
        action="append",
        metavar="PREFIX",
        help="also drop keys starting with PREFIX (repeatable; teacher./ema./momentum_encoder./... always)",
    )
    p.add_argument("--no-drop", action="store_true", help="keep teacher/EMA/momentum-encoder copies")
    p.add_argument("--no-strip-prefix", action="store_true", help="keep module./model. wrapper prefixes")
    p.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from qualitas.training import checkpoint_tools as ct

    ckpt = ct.read_checkpoint_file(args.path)
    if args.checkpoint_command == "show":
        summary = ct.summarize(ckpt, args.path)
        if args.json:
            print(json.dumps(summary.to_dict(), indent=1, allow_nan=False))
        else:
            print(summary.text(limit=None if args.all else 40))
        return 0
    container, state = ct.find_state(ckpt)
    if args.checkpoint_command == "rename":
        rules = ct.parse_rules(args.rule)
        renamed, counts = ct.rename_keys(state, rules)
        out = (
            renamed
            if str(args.out).lower().endswith(".safetensors")
            else ct.replace_state(ckpt, container, renamed)
        )
        ct.write_state(out, args.out)
        for rule, n in counts.items():
            print(f"{rule}: {n} key(s)")
            if n == 0:
                print(f"qualitas checkpoint: warning: rule {rule} matched no key", file=sys.stderr)
        print(f"wrote {args.out} ({len(renamed)} tensors)")
        return 0
    drop = () if args.no_drop else (*ct.DROP_PREFIXES, *(args.drop or ()))
    strip = () if args.no_strip_prefix else ct.WRAPPER_PREFIXES
    kept = ct.strip_state(state, keep_prefix=args.keep, drop=drop, strip=strip)
    ct.write_state(kept, args.out)
    dropped = [k for k in ckpt if k in ct.TRAINING_STATE_KEYS]
    n = sum(int(v.numel()) for v in kept.values() if v.is_floating_point())
    print(
        f"wrote {args.out}: {len(kept)} of {len(state)} tensors, {n:,} parameters"
        + (f"; left out {', '.join(dropped)}" if dropped else "")
    )
    return 0

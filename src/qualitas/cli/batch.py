"""``qualitas batch``: score a catalog (folder or manifest) on Ray into a folder of shards.

A separate command rather than ``qualitas score --ray``: its output is a folder of
JSONL/Parquet shards (not one file), every run resumes what the folder already holds, its
input can be a Parquet/CSV/JSONL manifest, and it has cluster options (address, actors,
CPUs/GPUs per actor). Scores and row schema are those of ``qualitas score``. Exit status:
0 when every item is scored, 1 when any item failed (its row has ``error``), 2 for usage
errors.
"""

from __future__ import annotations

import argparse
import sys

from qualitas.cli.score import _check_device, _positive_float, _positive_int, _split_metrics

HELP = "score a catalog (folder or manifest) on Ray into resumable JSONL/Parquet shards"
"""One line for ``qualitas --help``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch",
        help=HELP,
        description=(
            "Score a folder, files, or a manifest (.jsonl/.csv/.parquet with 'path' or 'dist' and "
            "optional 'ref' columns) on a Ray cluster, or a local Ray without --ray. Results go "
            "to the folder --out as JSONL and/or Parquet shards; a rerun skips items already there."
        ),
    )
    p.add_argument("source", nargs="+", metavar="SOURCE", help="files, folders, or one manifest")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created; resumed when present)"
    )
    p.add_argument("--ref", metavar="REF", help="reference file or folder (not with a manifest)")
    p.add_argument("--root", metavar="DIR", help="folder a manifest's relative paths start from")
    p.add_argument("--metric", dest="metrics", action="extend", nargs="+", metavar="NAME")
    p.add_argument("--model", metavar="PATH", help="nr-image, nr-video, a run or an export")
    p.add_argument("--format", choices=("jsonl", "parquet", "both"), default="jsonl", help="shard format")
    p.add_argument(
        "--shard-rows", type=_positive_int, default=1000, metavar="N", help="rows per Parquet shard"
    )
    p.add_argument(
        "--max-items", type=_positive_int, metavar="N", help="stop after N new results (rerun to go on)"
    )
    g = p.add_argument_group("ray")
    g.add_argument(
        "--ray",
        dest="address",
        metavar="ADDRESS",
        help="Ray cluster address (auto, ray://host:10001, host:6379); default: a local Ray",
    )
    g.add_argument("--num-cpus", type=_positive_int, metavar="N", help="local Ray: CPUs (default: all)")
    g.add_argument("--workers", type=_positive_int, default=1, metavar="N", help="scoring actors")
    g.add_argument("--cpus-per-worker", type=_positive_float, default=1.0, metavar="N")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="N")
    g.add_argument(
        "--block-items", type=_positive_int, default=4, metavar="N", help="items per Ray task (default 4)"
    )
    g = p.add_argument_group("scoring (as qualitas score)")
    g.add_argument("--frame-step", type=_positive_int, default=1, metavar="N")
    g.add_argument("--max-frames", type=_positive_int, metavar="N")
    g.add_argument("--pool", choices=("mean", "harmonic_mean", "min", "p5"), default="mean")
    g.add_argument("--batch-size", type=_positive_int, metavar="N")
    g.add_argument("--on-size-mismatch", choices=("scale", "error"), default="scale")
    g.add_argument("--allow-fps-mismatch", action="store_true")
    g.add_argument("--vmaf-model")
    g.add_argument("--device", default="cpu", help="cpu or cuda (cuda by default with --gpus-per-worker)")
    g.add_argument("--threads", type=_positive_int, metavar="N", help="torch threads per actor")
    p.add_argument("--quiet", action="store_true", help="no progress lines and no summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from qualitas.runtime.distributed import RayOptions, score_catalog, summary_rows
    from qualitas.runtime.score import ScoreOptions

    options = ScoreOptions(
        frame_step=args.frame_step,
        max_frames=args.max_frames,
        pool=args.pool,
        device=_check_device(args.device),
        batch_size=args.batch_size,
        threads=args.threads,
        on_size_mismatch=args.on_size_mismatch,
        allow_fps_mismatch=args.allow_fps_mismatch,
        vmaf_model=args.vmaf_model,
        raise_errors=bool(getattr(args, "debug", False)),
    )
    ray_options = RayOptions(
        address=args.address,
        num_cpus=args.num_cpus,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        block_items=args.block_items,
    )
    summary = score_catalog(
        args.source,
        args.out,
        ref=args.ref,
        metrics=_split_metrics(args.metrics),
        model=args.model,
        options=options,
        ray_options=ray_options,
        fmt=args.format,
        shard_rows=args.shard_rows,
        max_items=args.max_items,
        root=args.root,
        progress=not args.quiet,
    )
    # The status covers the whole output (earlier runs' rows too), as `qualitas score --resume`.
    failed = sum(1 for r in summary_rows(args.out, args.format) if r.get("error"))
    if not args.quiet:
        print(
            f"qualitas batch: {summary.scored} scored ({summary.failed} failed), {summary.skipped} already "
            f"in the output, {summary.remaining} left, {summary.seconds:.1f} s -> {summary.out}",
            file=sys.stderr,
        )
    return 1 if failed else 0

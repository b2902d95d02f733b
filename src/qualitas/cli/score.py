"""``qualitas score``: score images and videos with metrics (FR with --ref, else NR) or a model.

Output: ``--out FILE`` writes JSON or CSV (by extension, or ``--format``) atomically and
prints a one-line summary on stderr; without ``--out`` the results go to stdout as
``--format`` (default: a table on a terminal, JSON when piped). Exit status: 0 when every
input was scored with every metric, 1 when any input or any named metric failed (``error``
/ ``metric_errors`` say why; the rest is still written), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import re
import sys
from functools import partial

from qualitas.errors import UsageError

_SIZE = re.compile(r"^(\d+)[xX](\d+)$")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _size(text: str) -> tuple[int, int]:
    m = _SIZE.match(text.strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


HELP = "score images/videos with metrics or models (FR with --ref, else NR)"
"""One line for ``qualitas --help``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "score",
        help=HELP,
        description=(
            "Score distorted images/videos against a reference (--ref) with full-reference metrics, "
            "or alone with no-reference metrics or a model. DIST and REF are files or folders; "
            "folders pair by relative path with the extension ignored."
        ),
    )
    p.add_argument("dist", nargs="+", metavar="DIST", help="distorted file(s) or folder(s)")
    p.add_argument("--ref", metavar="REF", help="reference file or folder (full-reference scoring)")
    p.add_argument(
        "--metric",
        dest="metrics",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="metric name(s), repeatable or comma-separated (default with --ref: psnr ssim ms_ssim, "
        "+ vmaf for videos); `qualitas metrics` lists them",
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="PATH",
        help="score with a trained/exported quality model, or a shipped one: nr-image, nr-video "
        "(default without --metric and --ref: the one of the media kind)",
    )
    g = p.add_argument_group("frames and pooling")
    g.add_argument("--frame-step", type=_positive_int, default=1, metavar="N", help="score every N-th frame")
    g.add_argument("--max-frames", type=_positive_int, metavar="N", help="score at most N frames per video")
    g.add_argument(
        "--pool",
        choices=("mean", "harmonic_mean", "min", "p5"),
        default="mean",
        help="pooling of per-frame scores (min and p5 take the worse direction of each metric)",
    )
    g.add_argument(
        "--batch-size", type=_positive_int, metavar="N", help="frames per metric batch (default: auto)"
    )
    g = p.add_argument_group("pairing")
    g.add_argument(
        "--on-size-mismatch",
        choices=("scale", "error"),
        default="scale",
        help="distorted and reference sizes differ: scale the distorted (bicubic, recorded) or fail",
    )
    g.add_argument(
        "--allow-fps-mismatch",
        action="store_true",
        help="score videos with different frame rates frame by frame",
    )
    g = p.add_argument_group("raw .yuv inputs")
    g.add_argument("--size", type=_size, metavar="WxH", help="frame size of raw .yuv inputs")
    g.add_argument("--pix-fmt", help="pixel format of raw .yuv inputs (default yuv420p)")
    g.add_argument("--fps", type=_positive_float, default=None, help="frame rate of raw .yuv inputs")
    g.add_argument("--ref-size", type=_size, metavar="WxH", help="raw .yuv reference size (default --size)")
    g.add_argument("--ref-pix-fmt", help="raw .yuv reference pixel format (default --pix-fmt)")
    g.add_argument("--ref-fps", type=_positive_float, help="raw .yuv reference frame rate (default --fps)")
    g = p.add_argument_group("vmaf")
    g.add_argument("--vmaf-model", help="libvmaf model name or .json file (default vmaf_v0.6.1)")
    g.add_argument(
        "--vmaf-threads", type=_positive_int, metavar="N", help="libvmaf threads (default: all cores)"
    )
    g = p.add_argument_group("output and execution")
    g.add_argument(
        "--out",
        metavar="FILE",
        help="write results to FILE.json or FILE.csv (atomic), or stream them to FILE.jsonl "
        "(one flushed line per input)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="with --out FILE.jsonl: keep its lines and score only the inputs not in it yet "
        "(same path, size, mtime, metrics and options)",
    )
    g.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="stop an input that takes longer (scored in a child process); it gets an error",
    )
    g.add_argument("--frames-csv", metavar="FILE", help="also write per-frame scores to FILE (CSV, atomic)")
    g.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        help="output format (default: from --out's extension; else table on a terminal, json when piped)",
    )
    g.add_argument("--device", default="cpu", help="cpu or cuda[:N] for frame metrics (default cpu)")
    g.add_argument("--jobs", type=_positive_int, default=1, metavar="N", help="inputs scored in parallel")
    g.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="torch threads for the frame metrics (default: CPU cores / jobs - 1, at least 1)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=run)
    return p


def _split_metrics(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def _yuv_specs(args: argparse.Namespace):
    """Raw YUV specs for dist and ref (``None`` when no --size was given)."""
    if args.size is None and args.ref_size is None:
        if args.pix_fmt or args.ref_pix_fmt or args.ref_fps or args.fps:
            raise UsageError(
                "--pix-fmt/--fps/--ref-pix-fmt/--ref-fps describe raw .yuv inputs and need --size WxH"
            )
        return None, None
    from qualitas.io.yuv import RawYUVSpec

    def spec(size, pix_fmt, fps):
        if size is None:
            return None
        return RawYUVSpec(width=size[0], height=size[1], pix_fmt=pix_fmt, fps=fps or 25.0)

    pix_fmt = args.pix_fmt or "yuv420p"
    dist = spec(args.size, pix_fmt, args.fps)
    ref = spec(args.ref_size or args.size, args.ref_pix_fmt or pix_fmt, args.ref_fps or args.fps)
    return dist, ref


def _check_device(device: str) -> str:
    if device == "cpu" or re.fullmatch(r"cuda(:\d+)?", device):
        return device
    raise UsageError(f"--device must be cpu, cuda or cuda:N, got {device!r}")


def _load_model_scorer(path: str, device: str):
    """``--model PATH``: :func:`qualitas.runtime.models.model_scorers` (its old name here)."""
    from qualitas.runtime.models import model_scorers

    return model_scorers(path, device)


def run(args: argparse.Namespace) -> int:
    from qualitas.files import atomic_write_text
    from qualitas.runtime import report
    from qualitas.runtime.defaults import default_model_for_pairs, resolve_model
    from qualitas.runtime.progress import Progress, progress_enabled
    from qualitas.runtime.score import ScoreOptions, collect, score_pairs

    yuv, ref_yuv = _yuv_specs(args)
    options = ScoreOptions(
        frame_step=args.frame_step,
        max_frames=args.max_frames,
        pool=args.pool,
        device=_check_device(args.device),
        batch_size=args.batch_size,
        jobs=args.jobs,
        threads=args.threads,
        on_size_mismatch=args.on_size_mismatch,
        allow_fps_mismatch=args.allow_fps_mismatch,
        vmaf_model=args.vmaf_model,
        vmaf_threads=args.vmaf_threads,
        yuv=yuv,
        ref_yuv=ref_yuv,
        raise_errors=bool(getattr(args, "debug", False)),
    )
    options.validate()
    out_fmt = (args.format or report.infer_format(args.out)) if args.out else None
    if args.format and args.out and report.infer_format_or_none(args.out) == "jsonl":
        raise UsageError("--format does not apply to a .jsonl output (it is always JSON Lines)")
    if args.resume and out_fmt != "jsonl":
        raise UsageError("--resume needs --out FILE.jsonl (the streamed output it continues)")
    pairs = collect(args.dist, args.ref)
    if not pairs:
        raise UsageError("no media files found in the given inputs")
    if len(args.model or []) > 1:
        raise UsageError(
            "--model was given more than once; score with one model per run (or give both with separate runs)"
        )
    model = args.model[0] if args.model else None
    if model is None and not args.metrics and args.ref is None:
        # No metric, model or reference: the shipped no-reference model of the media kind.
        model = default_model_for_pairs(pairs)
    model_path = resolve_model(model) if model else None
    scorers = _load_model_scorer(model_path, options.device) if model_path else None
    metric_names = _split_metrics(args.metrics)

    writer = None
    keys: list[str] = []
    skipped = 0
    if out_fmt == "jsonl":
        from qualitas.runtime.catalog import LineWriter, item_key, read_done, run_signature

        signature = run_signature(metric_names, model_path, options, yuv, ref_yuv)
        done = read_done(args.out) if args.resume else {}
        keys = [item_key(p.dist, p.ref, signature) for p in pairs]
        todo = [i for i, k in enumerate(keys) if k not in done]
        skipped = len(pairs) - len(todo)
        writer = LineWriter(args.out, keep=done.values())
        run_pairs = [pairs[i] for i in todo]
        run_keys = [keys[i] for i in todo]
    else:
        run_pairs, run_keys = pairs, []

    def stream(i: int, res) -> None:
        if writer is not None:
            writer.write({**res.to_dict(), "key": run_keys[i]})

    progress = Progress(progress_enabled(args.quiet))
    try:
        results, infos = (
            score_pairs(
                run_pairs,
                metric_names,
                options,
                scorers=scorers,
                has_ref=args.ref is not None,
                progress=progress,
                on_result=stream,
                timeout=args.timeout,
                scorers_factory=partial(_load_model_scorer, model_path, options.device)
                if model_path
                else None,
            )
            if run_pairs
            else ([], {})
        )
    finally:
        if writer is not None:
            writer.close()
    if out_fmt == "jsonl":
        from qualitas.runtime.catalog import read_rows

        rows = read_rows(args.out)  # this run's and the earlier runs' lines
    else:
        rows = [r.to_dict() for r in results]
    if args.frames_csv:
        from qualitas.runtime.catalog import frames_csv

        names = list(infos) or sorted({m for r in rows for m in (r.get("scores") or {})})
        atomic_write_text(args.frames_csv, frames_csv(rows, names))
    failed = sum(1 for r in rows if r.get("error"))
    partial_n = sum(1 for r in rows if not r.get("error") and r.get("metric_errors"))
    if args.out:
        if out_fmt != "jsonl":
            atomic_write_text(args.out, report.render(out_fmt, results, infos, options.to_dict()))
        if not args.quiet:
            scored = len(rows) - failed
            detail = f" ({partial_n} with failed metrics)" if partial_n else ""
            resumed = f" ({skipped} already in the file)" if skipped else ""
            print(
                f"qualitas score: {scored} scored{detail}, {failed} failed{resumed} -> {args.out}",
                file=sys.stderr,
            )
    else:
        fmt = args.format or ("table" if sys.stdout.isatty() else "json")
        sys.stdout.write(report.render(fmt, results, infos, options.to_dict()))
        sys.stdout.flush()
    if not args.quiet:
        for line in problem_lines(results):
            print(f"qualitas score: {line}", file=sys.stderr)
    # Partial results (some metric failed) count as failures for the exit status: a script
    # that checks only the status must not take a missing metric for a complete result.
    return 1 if failed or partial_n else 0


def problem_lines(results) -> list[str]:
    """One line per failed input or failed metric, each naming the path once."""
    from qualitas.runtime.report import metric_errors_text

    lines = []
    for r in results:
        if r.error:
            where = "" if r.error.startswith(r.path) else f"{r.path}: "
            lines.append(f"{where}{r.error}")
            continue
        if r.metric_errors:
            lines.append(f"{r.path}: {metric_errors_text(r.metric_errors)}")
        lines += [f"{r.path}: {note}" for note in r.notes if " skipped: " in note or " is NaN" in note]
    return lines

"""``qualitas serve``: an HTTP scoring service (FastAPI + uvicorn), see docs/serving.md."""

from __future__ import annotations

import argparse
import os

from qualitas.cli.score import _check_device, _positive_float, _positive_int, _split_metrics
from qualitas.errors import UsageError

HELP = "HTTP scoring service (POST /score, /healthz, /metrics)"
"""One line for ``qualitas --help``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help=HELP,
        description="Serve POST /score (an image or video upload; FR with a 'ref' part), GET /healthz, "
        "GET /metrics (Prometheus) and OpenAPI docs at /docs.",
    )
    p.add_argument("--model", help="nr-image, nr-video, a training run, an export or FILE.onnx")
    p.add_argument("--metric", dest="metrics", action="extend", nargs="+", metavar="NAME")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    g = p.add_argument_group("batching and limits")
    g.add_argument("--max-batch", type=_positive_int, default=8, metavar="N", help="images per model call")
    g.add_argument(
        "--max-wait-ms", type=float, default=5.0, metavar="MS", help="wait for a batch to fill (default 5)"
    )
    g.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="requests scored at once (default: max(8, --max-batch))",
    )
    g.add_argument("--queue-size", type=int, default=64, metavar="N", help="waiting requests before 503")
    g.add_argument("--timeout", type=_positive_float, default=60.0, metavar="S", help="per request (504)")
    g.add_argument("--max-body-mb", type=_positive_float, default=64.0, metavar="MB", help="body limit (413)")
    g.add_argument(
        "--token-env",
        metavar="VAR",
        help="require 'Authorization: Bearer <token>' with the token read from environment variable VAR",
    )
    g.add_argument("--device", default="cpu")
    g.add_argument("--threads", type=_positive_int, metavar="N", help="torch threads (default: cores / 2)")
    g.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug")
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from qualitas.runtime.score import ScoreOptions

    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401

        from qualitas.serve.app import ServeConfig, serve
    except ModuleNotFoundError as err:
        raise UsageError(f"qualitas serve needs {err.name}: pip install 'qualitas[serve]'") from None
    token = None
    if args.token_env:
        # From the environment, not the command line: argv is visible to every local user.
        token = os.environ.get(args.token_env)
        if not token:
            raise UsageError(f"--token-env {args.token_env}: that environment variable is empty or unset")
    config = ServeConfig(
        model=args.model,
        metrics=_split_metrics(args.metrics),
        options=ScoreOptions(device=_check_device(args.device)),
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        workers=args.workers or max(8, args.max_batch),
        queue_size=args.queue_size,
        timeout=args.timeout,
        max_body_mb=args.max_body_mb,
        token=token,
        threads=args.threads,
    )
    serve(config, args.host, args.port, log_level=args.log_level)
    return 0

"""The scoring service (``qualitas serve``): FastAPI on uvicorn, the scoring engine behind it.

``POST /score`` takes an image or video as a raw body (``Content-Type: image/png`` ...) or
as a multipart part ``file`` (full reference: a second part ``ref``), scores it with the
one :class:`~qualitas.runtime.score.Session` opened at start (model and metrics loaded
once) and answers the ``qualitas score`` JSON document with one result. Uploads are
written to a private temporary folder and deleted after scoring; a request never names a
path on the server. Errors are one line in ``{"detail": ...}``: 401 (token), 413 (size),
415 (media type), 422 (not decodable / wrong parts), 503 (queue full), 504 (timeout).
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at
# definition time, and `Request` is imported inside create_app.
import asyncio
import hmac
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualitas.errors import UsageError, one_line
from qualitas.runtime.score import Pair, ScoreOptions

RAW_TYPES: dict[str, str] = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "video/webm": ".webm",
    "video/x-msvideo": ".avi",
    "video/mp2t": ".ts",
    "video/mpeg": ".mpg",
}
"""Accepted media types -> the file extension the engine reads them by."""


@dataclass
class ServeConfig:
    """Everything ``qualitas serve`` takes besides host and port."""

    model: str | None = None
    metrics: list[str] | None = None
    options: ScoreOptions = field(default_factory=ScoreOptions)
    max_batch: int = 8
    max_wait_ms: float = 5.0
    workers: int = 8
    """Requests scored at once (threads); batching needs at least ``max_batch``."""
    queue_size: int = 64
    """Requests that may wait for a worker; one more is answered 503."""
    timeout: float = 60.0
    max_body_mb: float = 64.0
    token: str | None = None
    threads: int | None = None

    def validate(self) -> None:
        if not self.model and not self.metrics:
            raise UsageError("serve needs --model (nr-image, nr-video, a run or an export) or --metric NAME")
        for name in ("max_batch", "workers"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.queue_size < 0 or self.max_wait_ms < 0:
            raise UsageError("queue size and max wait must be >= 0")
        if not self.timeout > 0 or not self.max_body_mb > 0:
            raise UsageError("timeout and max body size must be > 0")
        self.options.validate()


class HttpError(Exception):
    """A request refused with ``status`` and a one-line ``detail``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def suffix_for(filename: str | None, content_type: str | None) -> str:
    """The media extension of an upload: its file name's, else its media type's (415 if none)."""
    from qualitas.io.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    ext = Path(filename or "").suffix.lower()
    if ext in IMAGE_EXTENSIONS or (ext in VIDEO_EXTENSIONS and ext != ".yuv"):
        return ext
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in RAW_TYPES:
        return RAW_TYPES[ctype]
    shown = ctype or "none"
    raise HttpError(415, f"unsupported media type '{shown}'; send one of {', '.join(RAW_TYPES)}")


def public_name(filename: str | None, fallback: str) -> str:
    """The name a result shows: the client's base name (never a server path)."""
    name = Path(filename or "").name.replace("\n", " ").strip()
    return name[:200] or fallback


class Service:
    """The state of one server: session, workers, admission counter, Prometheus metrics."""

    def __init__(self, config: ServeConfig) -> None:
        import torch
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        from qualitas.runtime.defaults import resolve_model
        from qualitas.runtime.score import metric_info, open_session

        config.validate()
        self.config = config
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "qualitas_requests", "Scoring requests by HTTP status", ["code"], registry=self.registry
        )
        self.errors = Counter(
            "qualitas_request_errors",
            "Refused or failed requests by reason",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "qualitas_request_seconds",
            "Time from receipt to response of /score",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "qualitas_queue_depth", "Admitted requests waiting for a worker", registry=self.registry
        )
        self.inflight = Gauge("qualitas_inflight", "Requests being scored", registry=self.registry)
        self.batch_sizes = Histogram(
            "qualitas_batch_images",
            "Images per model call (dynamic batching)",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // 2))
        self.batcher = None
        scorers = None
        self.model_path = resolve_model(config.model) if config.model else None
        full_reference = any(metric_info(m).full_reference for m in config.metrics or [])
        if self.model_path is not None:
            from qualitas.runtime.models import load_model

            model = load_model(self.model_path, device=config.options.device, batch_size=config.max_batch)
            full_reference = full_reference or model.card.full_reference
            scorer: Any = model
            if model.info.kind == "frames" and config.max_batch > 1:
                from qualitas.serve.batching import BatchingScorer

                scorer = self.batcher = BatchingScorer(
                    model, config.max_batch, config.max_wait_ms / 1000.0, self.batch_sizes.observe
                )
            scorers = {model.info.name: scorer}
        self.full_reference = full_reference
        self.session = open_session(config.metrics, config.options, scorers=scorers, has_ref=full_reference)
        self.pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="qualitas-serve")
        self.tmp_root = Path(tempfile.mkdtemp(prefix="qualitas-serve-"))  # 0700: private
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0

    # ------------------------------------------------------------------ admission

    def admit(self) -> None:
        """Take a slot (503 when every worker is busy and the queue is full)."""
        with self._lock:
            if self._admitted >= self.config.workers + self.config.queue_size:
                raise HttpError(
                    503, "server busy: the request queue is full; retry later", {"Retry-After": "1"}
                )
            self._admitted += 1
            self._gauges()

    def release(self) -> None:
        with self._lock:
            self._admitted -= 1
            self._gauges()

    def _gauges(self) -> None:
        self.inflight.set(self._running)
        self.queue_depth.set(max(0, self._admitted - self._running))

    # ------------------------------------------------------------------ scoring (worker thread)

    def score_uploads(self, dist: tuple[bytes, str, str], ref: tuple[bytes, str, str] | None) -> dict:
        """Write the uploads to a private folder, score them, delete them; the result row
        with client names instead of the temporary paths."""
        with self._lock:
            self._running += 1
            self._gauges()
        folder = Path(tempfile.mkdtemp(dir=self.tmp_root))
        try:
            paths = []
            for i, (data, suffix, _) in enumerate([dist] + ([ref] if ref is not None else [])):
                p = folder / f"{'dist' if i == 0 else 'ref'}{suffix}"
                p.write_bytes(data)
                paths.append(str(p))
            res = self.session.score(Pair(paths[0], paths[1] if ref is not None else None))
            row = res.to_dict()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with self._lock:
                self._running -= 1
                self._admitted -= 1
                self._gauges()
        names = {paths[0]: dist[2]}
        if ref is not None:
            names[paths[1]] = ref[2]
        return _rename(row, names)

    def document(self, row: dict) -> dict:
        """The ``qualitas score`` JSON document around one result row."""
        from qualitas.runtime.report import json_safe, metric_header
        from qualitas.version import __version__

        return json_safe(
            {
                "version": __version__,
                "metrics": metric_header(self.session.infos),
                "options": self.config.options.to_dict(),
                "results": [row],
            }
        )

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.batcher is not None:
            self.batcher.close()
        shutil.rmtree(self.tmp_root, ignore_errors=True)


def _rename(obj: Any, names: dict[str, str]) -> Any:
    """Replace temporary paths by the client's names everywhere in a result (errors too)."""
    if isinstance(obj, str):
        for path, name in names.items():
            obj = obj.replace(path, name)
        return obj
    if isinstance(obj, dict):
        return {k: _rename(v, names) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename(v, names) for v in obj]
    return obj


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, refusing (413) as soon as it passes ``limit`` bytes (announced or not)."""
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise HttpError(413, f"request body of {int(announced)} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_REASONS = {401: "auth", 413: "too_large", 415: "media_type", 422: "invalid", 503: "busy", 504: "timeout"}

_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "image or video"},
                        "ref": {"type": "string", "format": "binary", "description": "reference (FR runs)"},
                    },
                    "required": ["file"],
                }
            },
            **{t: {"schema": {"type": "string", "format": "binary"}} for t in RAW_TYPES},
        },
    }
}


def create_app(config: ServeConfig):
    """The FastAPI application of ``config`` (the model is loaded here, once)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    service = Service(config)
    limit = int(config.max_body_mb * 1024 * 1024)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        service.close()

    app = FastAPI(
        title="qualitas scoring service",
        description="Perceptual quality scores of uploaded images and videos (docs/serving.md).",
        lifespan=lifespan,
    )
    app.state.service = service

    def refuse(err: HttpError, reason: str) -> JSONResponse:
        service.requests.labels(str(err.status)).inc()
        service.errors.labels(reason).inc()
        return JSONResponse({"detail": err.detail}, status_code=err.status, headers=err.headers)

    async def parts(request: Request) -> tuple[tuple[bytes, str, str], tuple[bytes, str, str] | None]:
        body = await _read_body(request, limit)
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() == "multipart/form-data":
            request._body = body  # Starlette parses the form from the body read above
            try:
                form = await request.form(max_files=2, max_fields=4)
            except Exception as err:  # noqa: BLE001 - any parser refusal is the client's
                raise HttpError(422, f"malformed multipart body: {one_line(err)}") from None
            got = []
            for name in ("file", "ref"):
                part = form.get(name)
                if part is None:
                    got.append(None)
                    continue
                if isinstance(part, str) or not hasattr(part, "read"):
                    raise HttpError(422, f"part '{name}' must be a file upload")
                data = await part.read()
                got.append(
                    (data, suffix_for(part.filename, part.content_type), public_name(part.filename, name))
                )
            if got[0] is None:
                raise HttpError(422, "a multipart request needs a 'file' part (and 'ref' for full reference)")
            dist, ref = got
        else:
            dist, ref = (body, suffix_for(None, ctype), "upload"), None
        for what in (dist, ref):
            if what is not None and not what[0]:
                raise HttpError(422, f"{what[2]}: empty upload (0 bytes)")
        if service.full_reference and ref is None:
            raise HttpError(422, "this server scores full-reference: send multipart parts 'file' and 'ref'")
        if not service.full_reference and ref is not None:
            raise HttpError(422, "this server scores no-reference: send no 'ref' part")
        return dist, ref

    @app.post("/score", openapi_extra=_OPENAPI_BODY, summary="Score one image or video")
    async def score(request: Request):
        t0 = time.perf_counter()
        try:
            if config.token is not None:
                auth = request.headers.get("authorization", "")
                if not hmac.compare_digest(auth.encode(), f"Bearer {config.token}".encode()):
                    raise HttpError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
            dist, ref = await parts(request)
            service.admit()
            loop = asyncio.get_running_loop()
            try:
                fut = loop.run_in_executor(service.pool, service.score_uploads, dist, ref)
            except RuntimeError as err:  # the pool was shut down (server stopping)
                service.release()
                raise HttpError(503, f"server is shutting down ({one_line(err)})") from None
            try:
                # shield: on timeout the worker goes on (a thread cannot be stopped) and its
                # slot stays taken until it ends, so admission still counts it.
                row = await asyncio.wait_for(asyncio.shield(fut), timeout=config.timeout)
            except asyncio.TimeoutError:
                raise HttpError(504, f"scoring took longer than {config.timeout:g} s (--timeout)") from None
        except HttpError as err:
            return refuse(err, _REASONS.get(err.status, "other"))
        except Exception as err:  # noqa: BLE001 - a bug answers 500; the server keeps serving
            return refuse(HttpError(500, f"internal error: {one_line(err)}"), "internal")
        finally:
            service.latency.observe(time.perf_counter() - t0)
        if row.get("error"):
            return refuse(HttpError(422, row["error"]), "decode")
        service.requests.labels("200").inc()
        return JSONResponse(service.document(row))

    @app.get("/healthz", summary="Liveness and what the server scores")
    async def healthz():
        return {
            "status": "ok",
            "model": service.model_path,
            "metrics": list(service.session.infos),
            "full_reference": service.full_reference,
            "queue_depth": int(service.queue_depth._value.get()),
        }

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    """Run the service until interrupted (one process; scale out with several behind a proxy)."""
    import uvicorn

    app = create_app(config)  # validates and loads the model before anything listens
    print(f"qualitas serve: listening on http://{host}:{port} (docs at /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class ThreadedServer:
    """The real server on 127.0.0.1 and a free port, in a background thread (tests, benchmarks)."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

"""The scoring engine behind ``qualitas score``.

``score_paths(dists, ref, metrics, options) -> list[Result]`` pairs the inputs, scores every
pair and never lets one bad input stop the batch: a file that cannot be read, decoded or
paired gets ``Result.error`` (one line) and the others are still scored.

Videos are streamed: the distorted and reference files are decoded in lockstep, each in
its own background thread (decoding overlaps the metric maths), in batches whose size is
bounded by a pixel budget so that memory stays flat in the clip length. VMAF (a
``kind="files"`` metric) runs libvmaf in a separate process over the whole files, in
parallel with the frame metrics, and its per-frame scores are merged by frame index.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from qualitas.errors import MediaError, QualitasError, UsageError, one_line
from qualitas.metrics.base import MetricInfo
from qualitas.runtime.progress import NULL_PROGRESS, Progress

POOLS = ("mean", "harmonic_mean", "min", "p5")
SIZE_POLICIES = ("scale", "error")
BATCH_PIXEL_BUDGET = 1920 * 1080 * 4
"""Automatic batch size: frames per batch so that one batch holds about this many pixels
(4 frames of 1080p, 1 frame of 4K): enough to amortise per-call overhead, small enough that
memory does not grow with resolution."""
MAX_AUTO_BATCH = 32

# Errors that a bad input file can raise while being read, decoded or scored: recorded per
# file. Anything else (TypeError, KeyError...) is a bug and propagates.
INPUT_ERRORS: tuple[type[BaseException], ...] = (QualitasError, ValueError, OSError, RuntimeError, EOFError)


@dataclass(frozen=True)
class ScoreOptions:
    """Everything that controls a scoring run besides the inputs and metric names."""

    frame_step: int = 1
    max_frames: int | None = None
    pool: str = "mean"
    device: str = "cpu"
    batch_size: int | None = None
    """Frames per metric batch; ``None`` picks it from :data:`BATCH_PIXEL_BUDGET`."""
    jobs: int = 1
    threads: int | None = None
    """torch intra-op threads for the frame metrics; ``None``: :func:`torch_threads_for`."""
    on_size_mismatch: str = "scale"
    allow_fps_mismatch: bool = False
    vmaf_model: str | None = None
    vmaf_threads: int | None = None
    yuv: Any = None
    """``qualitas.io.yuv.RawYUVSpec`` for raw ``.yuv`` inputs (dist, and ref unless ``ref_yuv``)."""
    ref_yuv: Any = None
    prefetch: bool = True
    """Decode in background threads while the metrics run (off: everything in one thread)."""
    raise_errors: bool = False
    """Re-raise per-file errors instead of recording them (``--debug``)."""

    def yuv_for(self, path: str | os.PathLike, *, is_ref: bool = False) -> Any:
        """The raw-YUV spec that applies to ``path``: only ``.yuv`` files get one."""
        if not str(path).lower().endswith(".yuv"):
            return None
        return (self.ref_yuv or self.yuv) if is_ref else self.yuv

    def validate(self) -> None:
        """Raise :class:`UsageError` for out-of-range values."""
        if self.pool not in POOLS:
            raise UsageError(f"unknown pooling '{self.pool}'; choose from {', '.join(POOLS)}")
        if self.on_size_mismatch not in SIZE_POLICIES:
            raise UsageError(
                f"unknown size policy '{self.on_size_mismatch}'; choose from {', '.join(SIZE_POLICIES)}"
            )
        for name in ("frame_step", "jobs"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_frames", "batch_size", "vmaf_threads", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for but torch sees no CUDA device")

    def to_dict(self) -> dict:
        """The options that affect scores, for the output document."""
        return {
            "frame_step": self.frame_step,
            "max_frames": self.max_frames,
            "pool": self.pool,
            "on_size_mismatch": self.on_size_mismatch,
            "allow_fps_mismatch": self.allow_fps_mismatch,
            "vmaf_model": self.vmaf_model,
        }


@dataclass
class FrameScores:
    """Scores of one video frame (``index`` counts decoded frames from 0, before ``frame_step``)."""

    index: int
    time: float | None
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"index": self.index, "time": self.time, "scores": dict(self.scores)}


@dataclass
class Result:
    """The outcome for one input (one row of the output)."""

    path: str
    ref: str | None = None
    kind: str | None = None
    width: int | None = None
    height: int | None = None
    frames_scored: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    frames: list[FrameScores] | None = None
    error: str | None = None
    dist_frames: int | None = None
    ref_frames: int | None = None
    scaled_from: tuple[int, int] | None = None
    """(width, height) of the distorted input when it was scaled to the reference size."""
    notes: list[str] = field(default_factory=list)
    metric_errors: dict[str, str] = field(default_factory=dict)
    """Metric name -> one-line reason, for metrics that failed on this input while others
    were scored (the file's own failures go to ``error``)."""
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    """Videos: metric name -> summary of its per-frame scores (:func:`frame_stats`)."""

    @property
    def ok(self) -> bool:
        """Every requested metric was scored (no file error, no metric error)."""
        return self.error is None and not self.metric_errors

    @property
    def partial(self) -> bool:
        """Some metrics were scored and some failed."""
        return self.error is None and bool(self.metric_errors)

    def to_dict(self) -> dict:
        """Plain-Python form following docs/output-schema.md (floats not yet JSON-escaped)."""
        return {
            "path": self.path,
            "ref": self.ref,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "frames_scored": self.frames_scored,
            "scores": dict(self.scores),
            "frames": None if self.frames is None else [f.to_dict() for f in self.frames],
            "error": self.error,
            "dist_frames": self.dist_frames,
            "ref_frames": self.ref_frames,
            "scaled_from": None if self.scaled_from is None else list(self.scaled_from),
            "notes": list(self.notes),
            "metric_errors": dict(self.metric_errors),
            "stats": {k: dict(v) for k, v in self.stats.items()},
        }


# --------------------------------------------------------------------------- metrics


def default_metrics(kind: str, has_ref: bool) -> list[str]:
    """Metrics used when the user names none, for one input ``kind`` ("image"/"video").

    Full reference: psnr, ssim, ms_ssim, plus vmaf for videos. No reference: there is no
    default *metric*; the CLI scores with the default no-reference *model* of the media kind
    instead (:mod:`qualitas.runtime.defaults`), so here it is a usage error.
    """
    if has_ref:
        return ["psnr", "ssim", "ms_ssim"] + (["vmaf"] if kind == "video" else [])
    raise UsageError(
        "no-reference scoring needs --metric NAME (a no-reference metric, see `qualitas metrics`) "
        "or --model PATH|nr-image|nr-video; give --ref REF for full-reference metrics"
    )


def metric_info(name: str) -> MetricInfo:
    """Properties of a registered metric (unknown name -> ConfigError with did-you-mean; a
    model name or model file given as a metric -> UsageError pointing at ``--model``)."""
    from qualitas.errors import ConfigError
    from qualitas.metrics import METRICS

    try:
        return METRICS.get(name).info
    except ConfigError:
        from qualitas.runtime.defaults import DEFAULT_MODELS

        p = Path(name)
        run_or_export = p.is_dir() and any((p / f).is_file() for f in ("model.json", "config.yaml"))
        if name in DEFAULT_MODELS or p.suffix.lower() in _MODEL_SUFFIXES or run_or_export:
            raise UsageError(f"'{name}' is a model, not a metric: score with --model {name}") from None
        raise


_MODEL_SUFFIXES = (".ckpt", ".onnx", ".pt", ".pt2", ".xml")


def resolve_metrics(names: Sequence[str] | None, has_ref: bool, kinds: Iterable[str] = ()) -> list[str]:
    """Validate metric names for a run; returns the ordered, de-duplicated list.

    ``names=None`` means the defaults for every input kind in ``kinds``. A full-reference
    metric without a reference is a usage error (exit status 2).
    """
    if names is None or len(names) == 0:
        out: list[str] = []
        for kind in kinds or ("image",):
            out += [n for n in default_metrics(kind, has_ref) if n not in out]
        return out
    out = list(dict.fromkeys(names))
    for name in out:
        info = metric_info(name)
        if info.full_reference and not has_ref:
            raise UsageError(
                f"metric '{name}' is full-reference: give --ref REF (or pick a no-reference metric)"
            )
    return out


# --------------------------------------------------------------------------- pooling


def pool_scores(values: Sequence[float] | np.ndarray, method: str, higher_is_better: bool = True) -> float:
    """Pool per-frame scores into one number.

    * ``mean``: arithmetic mean.
    * ``harmonic_mean``: libvmaf's definition ``n / sum(1 / (x + 1)) - 1`` (the ``+1`` keeps
      zero scores finite); it leans towards low values.
    * ``min``: the worst frame (the maximum for lower-is-better metrics).
    * ``p5``: the 5th percentile in the worse direction (the 95th for lower-is-better
      metrics), nearest-rank, so an ``inf`` frame never turns into ``nan``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan
    if method == "mean":
        return float(x.mean())
    if method == "harmonic_mean":
        with np.errstate(divide="ignore"):
            return float(x.size / np.sum(1.0 / (x + 1.0)) - 1.0)
    if method == "min":
        return float(x.min() if higher_is_better else x.max())
    if method == "p5":
        if higher_is_better:
            return float(np.percentile(x, 5, method="lower"))
        return float(np.percentile(x, 95, method="higher"))
    raise UsageError(f"unknown pooling '{method}'; choose from {', '.join(POOLS)}")


def frame_stats(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Summary of one metric's per-frame scores: ``n, mean, min, max, std`` (population),
    ``p5, p25, p50, p75, p95`` (linear interpolation, as numpy and ffmpeg-quality-metrics)
    and ``harmonic_mean`` (libvmaf's ``n / sum(1/(x+1)) - 1``)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return {}
    with np.errstate(invalid="ignore", over="ignore"):
        out = {
            "n": int(x.size),
            "mean": float(x.mean()),
            "min": float(x.min()),
            "max": float(x.max()),
            "std": float(x.std()),
        }
        for q in (5, 25, 50, 75, 95):
            out[f"p{q}"] = float(np.percentile(x, q))
    out["harmonic_mean"] = pool_scores(x, "harmonic_mean")
    return out


def auto_batch_size(width: int, height: int, requested: int | None = None) -> int:
    """Frames per batch: ``requested``, or as many as fit :data:`BATCH_PIXEL_BUDGET`."""
    if requested is not None:
        return requested
    return int(max(1, min(MAX_AUTO_BATCH, BATCH_PIXEL_BUDGET // max(1, width * height))))


# --------------------------------------------------------------------------- prefetch

T = TypeVar("T")
_DONE = object()


class prefetch(Iterator[T]):  # noqa: N801 - used like a function: ``for b in prefetch(it)``
    """Iterate ``iterable`` in a background thread, one item ahead.

    The producer makes item k+1 while the consumer works on item k, and starts on k+2 only
    once k+1 has been taken, so at most two items are alive at a time (memory matters:
    one 4K frame in float32 RGB is 100 MB). Exceptions in the producer are re-raised in the
    consumer. ``close()`` (also called on exhaustion, on error and by ``with``) stops and
    joins the producer even if iteration never started, so no thread outlives its use.
    PyAV and torch release the GIL in their heavy parts, so decoding really runs in
    parallel with the metrics.
    """

    def __init__(self, iterable: Iterable[T]) -> None:
        self._iterable = iterable
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._taken = threading.Semaphore(0)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name="qualitas-decode", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Hand ``item`` over and wait until the consumer has taken it (False: stopped)."""
        self._queue.put(item)  # never blocks: the previous item was taken
        while not self._stop.is_set():
            if self._taken.acquire(timeout=0.05):
                return True
        return False

    def _produce(self) -> None:
        try:
            for item in self._iterable:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(err)
        finally:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        self._taken.release()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the producer thread and wait for it (idempotent)."""
        self._finished = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- engine


@dataclass
class _Metrics:
    """The metric objects of a run, split by kind."""

    infos: dict[str, MetricInfo]
    frame: dict[str, Callable[..., torch.Tensor]]
    files: list[str]
    file_scorers: dict[str, Any] = field(default_factory=dict)
    """``kind="files"`` scorers that are not registered metrics (video models, ``--model``)."""

    def subset(self, names: Sequence[str]) -> _Metrics:
        return _Metrics(
            {n: self.infos[n] for n in names},
            {n: m for n, m in self.frame.items() if n in names},
            [n for n in self.files if n in names],
            {n: m for n, m in self.file_scorers.items() if n in names},
        )


def _build_metrics(names: Sequence[str], device: str, scorers: Mapping[str, Any] | None = None) -> _Metrics:
    """Instantiate registered metrics ``names`` plus ready-made ``scorers`` (e.g. a model).

    A scorer is anything with ``info: MetricInfo`` (``kind="frames"``) that is callable as
    ``scorer(dist (B,3,H,W), ref (B,3,H,W) | None) -> (B,)``, exactly like a frame metric,
    or (``kind="files"``, e.g. a video model scoring clips) has ``score_files(dist, ref,
    **options)`` returning an object with ``frames: [(index, time, score)]`` like VMAF's.
    """
    from qualitas.metrics import get_metric

    infos = {n: metric_info(n) for n in names}
    frame = {n: get_metric(n, device=device) for n, i in infos.items() if i.kind == "frames"}
    file_scorers: dict[str, Any] = {}
    for name, scorer in (scorers or {}).items():
        info = getattr(scorer, "info", None)
        if name in infos:
            raise UsageError(f"'{name}' is both a metric and a model name")
        if (
            isinstance(info, MetricInfo)
            and info.kind == "files"
            and callable(getattr(scorer, "score_files", None))
        ):
            infos[name] = info
            file_scorers[name] = scorer
            continue
        if not isinstance(info, MetricInfo) or info.kind != "frames" or not callable(scorer):
            raise UsageError(f"'{name}' cannot be scored frame by frame by this runtime")
        infos[name] = info
        frame[name] = scorer
    files = [n for n, i in infos.items() if i.kind == "files"]
    unknown = [n for n, i in infos.items() if i.kind not in ("frames", "files")]
    if unknown:
        raise UsageError(f"metric '{unknown[0]}' has an unsupported kind '{infos[unknown[0]].kind}'")
    return _Metrics(infos, frame, files, file_scorers)


def _kind_of(path: str | os.PathLike) -> str:
    """``"image"`` or ``"video"`` by extension (raw ``.yuv`` is a video); MediaError otherwise."""
    from qualitas.io.media import media_kind

    return media_kind(path)


def _guess_kind(path: str | os.PathLike) -> str | None:
    try:
        return _kind_of(path)
    except INPUT_ERRORS:
        return None


def _check_readable(path: str | os.PathLike, what: str) -> None:
    """Exists, is a file, is not empty; ``what`` prefixes the message ("" or "reference ")."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{what}{p}: not found")
    if p.is_dir():
        raise MediaError(f"{what}{p}: is a folder, expected a file")
    if p.stat().st_size == 0:
        raise MediaError(f"{what}{p}: empty file (0 bytes)")


def _match(dist: torch.Tensor, ref_hw: tuple[int, int], policy: str) -> torch.Tensor:
    """Bring ``dist`` (B,3,H,W) to the reference (H, W) by the size policy (no-op when equal)."""
    if tuple(dist.shape[-2:]) == tuple(ref_hw):
        return dist
    from qualitas.io.pairing import match_size

    return match_size(dist, ref_hw, policy=policy)


def _size_check(res: Result, dist_wh: tuple[int, int], ref_wh: tuple[int, int], policy: str) -> None:
    """Apply the size policy to a pair before any decoding; records what was done."""
    if dist_wh == ref_wh:
        return
    (dw, dh), (rw, rh) = dist_wh, ref_wh
    if policy == "error":
        raise MediaError(
            f"sizes differ: distorted {dw}x{dh} vs reference {rw}x{rh} (--on-size-mismatch error)"
        )
    res.scaled_from = (dw, dh)
    res.notes.append(f"distorted scaled from {dw}x{dh} to the reference size {rw}x{rh} (bicubic)")


class _Scorer:
    """Scores pairs with a fixed set of metrics and options (one per run, thread-safe)."""

    def __init__(
        self, metrics: _Metrics, options: ScoreOptions, progress: Progress, defaults_used: bool = False
    ) -> None:
        self.metrics = metrics
        self.options = options
        self.progress = progress
        self.defaults_used = defaults_used

    def _call(
        self,
        name: str,
        metric: Callable[..., Any],
        dist: Any,
        ref: Any,
        failed: dict[str, BaseException],
    ) -> torch.Tensor | None:
        """One metric on one batch; an input error is recorded in ``failed`` for this metric
        only (it is not called again for this input), so the other metrics go on."""
        for value in (dist, ref):
            if isinstance(value, _Failed):  # its per-stream preparation failed
                failed[name] = value.error
                return None
        try:
            return metric(dist, ref)
        except INPUT_ERRORS as err:
            if self.options.raise_errors:
                raise
            failed[name] = err
            return None

    def _files_result(self, name: str, fut: Future, failed: dict[str, BaseException]) -> Any:
        """Result of a files metric (VMAF, a video model), or None when it failed (recorded)."""
        try:
            return fut.result()
        except INPUT_ERRORS as err:
            if self.options.raise_errors:
                raise
            failed[name] = err
            return None

    def _settle_failures(self, res: Result, failed: Mapping[str, BaseException]) -> None:
        """Turn the metrics that failed on ``res`` into ``metric_errors`` or skip notes.

        With the default metric set, a metric that refuses the input (a MediaError such as
        MS-SSIM on frames under 176 px) is *skipped* with a note: the user asked for no
        metric in particular, so what can be scored is scored and the run is not a failure.
        A metric the user named is an error of that metric. When nothing at all could be
        scored the input fails (``error``), and ``metric_errors`` still lists every reason.
        """
        for name, err in failed.items():
            message = one_line(err)
            # The path is the result's own field (and the key of the stderr line): not repeated.
            message = message.removeprefix(f"{res.path}: ")
            if self.defaults_used and isinstance(err, MediaError):
                why = message[len(name) + 1 :] if message.startswith(f"{name} ") else message
                res.notes.append(f"{name} skipped: {why} (default metrics; choose others with --metric)")
            else:
                res.metric_errors[name] = message
        if failed and not res.scores:
            reasons = [f"{n}: {one_line(e)}" for n, e in failed.items()]
            only = one_line(next(iter(failed.values())))
            res.error = (
                only if len(reasons) == 1 else "no metric could be scored (" + "; ".join(reasons) + ")"
            )

    def _call_frame_metrics(
        self,
        frame: Mapping[str, Callable[..., torch.Tensor]],
        dist: torch.Tensor | None,
        ref: torch.Tensor | None,
        prepared: tuple[dict[str, Any], dict[str, Any]] | None = None,
        failed: dict[str, BaseException] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every frame metric not yet in ``failed`` on one batch -> {name: (B,)}.

        Metrics that name a ``shared_input`` (SSIM and MS-SSIM share MATLAB gray luma) are
        scored from per-stream prepared inputs (:class:`_StreamPrep`): ``prepared`` when the
        caller made them (in the decoding threads, possibly from luma), else made here from
        the RGB batches; the values equal calling the metrics on RGB (or, from luma, follow
        the luma rule of docs/metrics.md). The other metrics get the RGB batches. A metric
        that fails is added to ``failed`` and left out of the result.
        """
        failed = {} if failed is None else failed
        frame = {n: m for n, m in frame.items() if n not in failed}
        if prepared is None and ref is not None:
            prep = _StreamPrep(frame, use_luma=False)
            prepared = (prep.from_rgb(dist), prep.from_rgb(ref)) if prep.metrics else ({}, {})
        out: dict[str, torch.Tensor] = {}
        for name, metric in frame.items():
            if prepared is not None and name in prepared[0] and name in prepared[1]:
                value = self._call(
                    name, _StreamPrep.scorer(metric), prepared[0][name], prepared[1][name], failed
                )
            else:
                value = self._call(name, metric, dist, ref, failed)
            if value is not None:
                out[name] = self._perfect_if_identical(name, value, dist, ref)
        return out

    def _perfect_if_identical(
        self, name: str, value: torch.Tensor, dist: torch.Tensor | None, ref: torch.Tensor | None
    ) -> torch.Tensor:
        """A full-reference metric that is NaN on identical frames (FSIM, VSI, CW-SSIM of a
        flat image: 0/0 in their similarity maps) gets its perfect score there, the value
        its definition tends to; other NaNs are kept and noted (:func:`_nan_notes`)."""
        info = self.metrics.infos.get(name)
        if info is None or not info.full_reference or dist is None or ref is None:
            return value
        nan = torch.isnan(value)
        if not bool(nan.any()):
            return value
        perfect = info.range[1] if info.higher_is_better else info.range[0]
        if not math.isfinite(perfect):
            return value
        n = value.shape[0]
        same = (dist[:n] == ref[:n]).flatten(1).all(dim=1).to(value.device)
        return torch.where(nan & same, torch.full_like(value, perfect), value)

    # -- entry point
    def score(
        self, dist: str, ref: str | None, names: Sequence[str], pair_error: str | None = None
    ) -> Result:
        opts = self.options
        res = Result(path=str(dist), ref=None if ref is None else str(ref), kind=_guess_kind(dist))
        if pair_error:
            res.error = pair_error
            return res
        try:
            self._score_into(res, names)
        except INPUT_ERRORS as err:
            if opts.raise_errors:
                raise
            res.error = one_line(err)
            res.scores, res.frames, res.frames_scored = {}, None, 0
            res.metric_errors, res.stats = {}, {}
        return res

    def _score_into(self, res: Result, names: Sequence[str]) -> None:
        _check_readable(res.path, "")
        kind = _kind_of(res.path)
        res.kind = kind
        if res.ref is not None:
            _check_readable(res.ref, "reference ")
            ref_kind = _kind_of(res.ref)
            if ref_kind != kind:
                raise MediaError(f"cannot compare a {kind} with a {ref_kind} reference: {res.ref}")
        metrics = self.metrics.subset(names)
        if kind == "image":
            self._score_image(res, metrics)
        else:
            self._score_video(res, metrics)

    # -- images
    def _score_image(self, res: Result, metrics: _Metrics) -> None:
        from qualitas.io.image import read_image

        opts = self.options
        dist = read_image(res.path).data.unsqueeze(0)
        ref = None
        if res.ref is not None:
            ref = read_image(res.ref).data.unsqueeze(0)
            rh, rw = ref.shape[-2:]
            _size_check(res, (dist.shape[-1], dist.shape[-2]), (rw, rh), opts.on_size_mismatch)
            dist = _match(dist, (rh, rw), opts.on_size_mismatch)
        res.height, res.width = (int(s) for s in dist.shape[-2:])
        vmaf = self._start_files_metrics(res, metrics)
        dist = dist.to(opts.device)
        ref = None if ref is None else ref.to(opts.device)
        failed: dict[str, BaseException] = {}
        try:
            for name, value in self._call_frame_metrics(metrics.frame, dist, ref, None, failed).items():
                res.scores[name] = float(value[0])
        except BaseException:
            _wait_quietly(vmaf.values())
            raise
        for name, fut in vmaf.items():
            vres = self._files_result(name, fut, failed)
            if vres is not None:
                res.scores[name] = float(vres.frames[0].score)
        res.frames_scored = 1 if res.scores else 0
        for name, value in res.scores.items():
            if math.isnan(value):
                res.notes.append(f"{name} is NaN: undefined on this input (e.g. a flat image, no texture)")
        self._settle_failures(res, failed)

    # -- files metrics (VMAF): a separate process over the whole files
    def _start_files_metrics(self, res: Result, metrics: _Metrics) -> dict[str, Future]:
        if not metrics.files:
            return {}
        from qualitas.metrics import vmaf as vmaf_mod

        opts = self.options
        out: dict[str, Future] = {}
        for name in metrics.files:
            if name in metrics.file_scorers:  # a model scoring whole files (video clips)
                out[name] = _run_in_thread(
                    metrics.file_scorers[name].score_files,
                    res.path,
                    res.ref,
                    frame_step=opts.frame_step,
                    max_frames=opts.max_frames,
                    yuv_dist=opts.yuv_for(res.path),
                    yuv_ref=None if res.ref is None else opts.yuv_for(res.ref, is_ref=True),
                )
                continue
            if name != "vmaf":  # the only files metric so far; a new one needs its call here
                raise UsageError(
                    f"metric '{name}' runs on files but the runtime does not know how to call it"
                )
            kwargs: dict[str, Any] = {
                "threads": opts.vmaf_threads or 0,  # 0: libvmaf uses every core
                "frame_step": opts.frame_step,
                # score_files trims both files to their first `max_frames` decoded frames before
                # subsampling; the frame readers stop after `max_frames` *selected* frames.
                "max_frames": None
                if opts.max_frames is None
                else (opts.max_frames - 1) * opts.frame_step + 1,
                "yuv_dist": opts.yuv_for(res.path),
                "yuv_ref": None if res.ref is None else opts.yuv_for(res.ref, is_ref=True),
            }
            if opts.vmaf_model is not None:
                kwargs["model"] = opts.vmaf_model
            out[name] = _run_in_thread(vmaf_mod.score_files, res.path, res.ref, **kwargs)
        return out

    # -- videos
    def _score_video(self, res: Result, metrics: _Metrics) -> None:
        from qualitas.io.video import has_luma_plane, iter_batches, iter_decoded_batches, probe_video

        opts = self.options
        dist_yuv = opts.yuv_for(res.path)
        ref_yuv = None if res.ref is None else opts.yuv_for(res.ref, is_ref=True)
        dinfo = probe_video(res.path, yuv=dist_yuv)
        rinfo = probe_video(res.ref, yuv=ref_yuv) if res.ref is not None else None
        self._check_raw_layout(res, [(res.path, dist_yuv, ""), (res.ref, ref_yuv, "reference ")])
        width, height = dinfo.width, dinfo.height
        if rinfo is not None:
            self._fps_check(res, dinfo, rinfo)
            _size_check(res, (dinfo.width, dinfo.height), (rinfo.width, rinfo.height), opts.on_size_mismatch)
            width, height = rinfo.width, rinfo.height
        res.width, res.height = int(width), int(height)

        vmaf = self._start_files_metrics(res, metrics)
        frames: dict[int, FrameScores] = {}
        failed: dict[str, BaseException] = {}
        batch = auto_batch_size(max(dinfo.width, width), max(dinfo.height, height), opts.batch_size)
        fast = self._yuv_fast_scorer(metrics, dinfo, rinfo)
        if fast is not None:
            # psnr/psnr_y/ssim/ms_ssim of two same-size YUV videos: from the decoded planes
            # (qualitas.metrics.fr_yuv), no float frames.
            self._score_yuv_fast(res, fast, dinfo, rinfo, frames, failed, vmaf)
        elif metrics.frame:
            total = _expected_frames(
                [dinfo.num_frames] + ([rinfo.num_frames] if rinfo is not None else []), opts
            )
            kw: dict[str, Any] = {
                "frame_step": opts.frame_step,
                "max_frames": opts.max_frames,
                "batch_size": batch,
            }
            # Luma-only metrics read the Y plane of YUV video (both files planar YUV): no RGB
            # conversion for them, and RGB only when another metric needs it.
            prep = _StreamPrep(metrics.frame, use_luma=False)
            if (
                rinfo is not None
                and prep.luma_capable
                and has_luma_plane(dinfo.pix_fmt)
                and has_luma_plane(rinfo.pix_fmt)
            ):
                prep = _StreamPrep(metrics.frame, use_luma=True)
            planes = {"rgb": prep.needs_rgb(metrics.frame), "luma": prep.use_luma}
            # Per-stream preparation (gray, SSIM downsampling, MS-SSIM scales) runs in each
            # stream's decoding thread when both streams have the same size (no rescaling).
            early = rinfo is not None and prep.metrics and (dinfo.width, dinfo.height) == (width, height)
            # Large frames (4K: 100 MB of float RGB each) are decoded ahead but converted
            # here, into one buffer per stream: 200 MB less than converting ahead.
            large = (
                batch == 1 and 2 * max(dinfo.width, width) * max(dinfo.height, height) > BATCH_PIXEL_BUDGET
            )
            convert_late = opts.prefetch and large
            if not convert_late:
                # Batch tensors are recycled (fresh ones cost ~10 ms of page faults per 1080p
                # frame pair): the loop is done with a batch when it asks for the next one,
                # and the prefetching thread decodes one batch ahead, hence two buffers.
                kw["reuse_buffer"] = 2 if opts.prefetch else 1
            try:
                if convert_late:
                    dist_it = _ConvertLate(
                        prefetch(iter_decoded_batches(res.path, yuv=dist_yuv, **kw)), **planes
                    )
                    ref_it = None
                    if res.ref is not None:
                        ref_it = _ConvertLate(
                            prefetch(iter_decoded_batches(res.ref, yuv=ref_yuv, **kw)), **planes
                        )
                else:
                    dist_it = iter_batches(res.path, yuv=dist_yuv, **kw, **planes)
                    ref_it = (
                        iter_batches(res.ref, yuv=ref_yuv, **kw, **planes) if res.ref is not None else None
                    )
                    if opts.prefetch:
                        if early:
                            dist_it, ref_it = prep.attach(dist_it), prep.attach(ref_it)
                        dist_it = prefetch(dist_it)
                        ref_it = prefetch(ref_it) if ref_it is not None else None
                with self.progress.frames(total, Path(res.path).name) as bar:
                    counts = self._frame_loop(
                        res, metrics, dist_it, ref_it, (height, width), frames, bar, prep, failed
                    )
            except BaseException:
                _wait_quietly(vmaf.values())  # no libvmaf process outlives the failed input
                raise
            res.dist_frames, res.ref_frames = counts
            if res.ref is not None and counts[0] != counts[1]:
                res.notes.append(
                    f"frame counts differ: distorted {counts[0]} vs reference {counts[1]}; "
                    f"scored the first {min(counts)}"
                )
        for name, fut in vmaf.items():
            vres = self._files_result(name, fut, failed)
            if vres is None:
                continue
            for index, time, score in vres.frames:
                fs = frames.get(int(index))
                if fs is None:
                    fs = frames[int(index)] = FrameScores(int(index), None if time is None else float(time))
                fs.scores[name] = float(score)
        res.frames = [frames[i] for i in sorted(frames)]
        if not res.frames and failed:  # only files metrics, and they failed: say why
            res.frames = None
            self._settle_failures(res, failed)
            return
        if not res.frames:
            raise MediaError("no frames could be decoded")
        # A metric that failed part-way is dropped from every frame: a score pooled over
        # only the frames before the failure would look complete and be wrong.
        for f in res.frames:
            for name in failed:
                f.scores.pop(name, None)
        # Pool each metric over the frames that have it (all of them, unless VMAF and the
        # frame metrics saw different frame counts).
        names = [n for n in list(metrics.frame) + metrics.files if n not in failed]
        for name in names:
            values = [f.scores[name] for f in res.frames if name in f.scores]
            res.scores[name] = pool_scores(values, opts.pool, metrics.infos[name].higher_is_better)
            res.stats[name] = frame_stats(values)
            n_nan = sum(1 for v in values if math.isnan(v))
            if n_nan:
                res.notes.append(
                    f"{name} is NaN on {n_nan} of {len(values)} frames: undefined there (e.g. flat "
                    "frames, no texture)"
                )
        res.frames_scored = max((sum(1 for f in res.frames if name in f.scores) for name in names), default=0)
        if not metrics.frame:
            self._count_without_decoding(res)
        self._settle_failures(res, failed)

    def _yuv_fast_scorer(self, metrics: _Metrics, dinfo: Any, rinfo: Any) -> Any:
        """A :class:`~qualitas.metrics.fr_yuv.YuvFrameScorer` when this pair can take the fast
        path (both planar YUV, same size, unrotated, cpu, only metrics it computes), else None."""
        from qualitas.io.video import has_luma_plane
        from qualitas.metrics import fr_yuv

        if rinfo is None or not fr_yuv.serves(metrics.frame) or self.options.device != "cpu":
            return None
        if (dinfo.width, dinfo.height) != (rinfo.width, rinfo.height) or dinfo.rotation or rinfo.rotation:
            return None
        if not (has_luma_plane(dinfo.pix_fmt) and has_luma_plane(rinfo.pix_fmt)):
            return None
        if not fr_yuv.fast_path_enabled():
            return None
        return fr_yuv.YuvFrameScorer(list(metrics.frame))

    def _score_yuv_fast(
        self,
        res: Result,
        fast: Any,
        dinfo: Any,
        rinfo: Any,
        frames: dict[int, FrameScores],
        failed: dict[str, BaseException],
        vmaf: Mapping[str, Future],
    ) -> None:
        """The frame loop of the YUV fast path: each stream decoded and prepared in its own
        thread, the pair scored here; per-metric errors go to ``failed`` as in ``_frame_loop``."""
        from qualitas.io.video import iter_yuv_frames

        opts = self.options
        kw = {"frame_step": opts.frame_step, "max_frames": opts.max_frames}
        total = _expected_frames([dinfo.num_frames, rinfo.num_frames], opts)
        its = [
            fast.attach(iter_yuv_frames(path, yuv=opts.yuv_for(path, is_ref=is_ref), **kw))
            for path, is_ref in ((res.path, False), (res.ref, True))
        ]
        if opts.prefetch:
            its = [prefetch(it) for it in its]
        counts = [0, 0]
        try:
            with self.progress.frames(total, Path(res.path).name) as bar:
                while True:
                    d, r = next(its[0], None), next(its[1], None)
                    counts[0] += d is not None
                    counts[1] += r is not None
                    if d is None or r is None:
                        break
                    (df, dp), (_, rp) = d, r
                    values: dict[str, float] = {}
                    for name, value in fast.score(dp, rp).items():
                        if name in failed:
                            continue
                        if isinstance(value, BaseException):
                            if opts.raise_errors:
                                raise value
                            failed[name] = value
                        else:
                            values[name] = value
                    frames[df.index] = FrameScores(df.index, df.time, values)
                    bar.update(1)
                # One stream ended: count what is left of the other (decoded, not scored).
                counts[0] += sum(1 for _ in its[0])
                counts[1] += sum(1 for _ in its[1])
        except BaseException:
            _wait_quietly(vmaf.values())  # no libvmaf process outlives the failed input
            raise
        finally:
            for it in its:
                it.close()  # generators and prefetch threads alike
        res.dist_frames, res.ref_frames = counts
        if counts[0] != counts[1]:
            res.notes.append(
                f"frame counts differ: distorted {counts[0]} vs reference {counts[1]}; "
                f"scored the first {min(counts)}"
            )

    @staticmethod
    def _check_raw_layout(res: Result, inputs: Sequence[tuple[str | None, Any, str]]) -> None:
        """Raw YUV has no header: warn (a note) when the samples do not fit the declared layout."""
        from qualitas.io.yuv import layout_warnings

        for path, spec, what in inputs:
            if path is None or spec is None:
                continue
            res.notes += [f"{what}raw YUV: {w}" for w in layout_warnings(path, spec)]

    def _count_without_decoding(self, res: Result) -> None:
        """Files metrics only (a VMAF-only run decodes nothing here): count both sides'
        frames by demuxing, so a length mismatch is reported as in frame-metric runs."""
        from qualitas.io.video import count_frames

        opts = self.options
        if res.ref is None:
            return
        try:
            counts = [
                count_frames(res.path, opts.yuv_for(res.path)),
                count_frames(res.ref, opts.yuv_for(res.ref, is_ref=True)),
            ]
        except INPUT_ERRORS:
            return  # the metric itself read the files; a count is a bonus
        selected = [math.ceil(n / opts.frame_step) for n in counts]
        if opts.max_frames is not None:
            selected = [min(n, opts.max_frames) for n in selected]
        res.dist_frames, res.ref_frames = selected
        if selected[0] != selected[1]:
            res.notes.append(
                f"frame counts differ: distorted {selected[0]} vs reference {selected[1]}; "
                f"scored the first {min(selected)}"
            )

    def _fps_check(self, res: Result, dist_info: Any, ref_info: Any) -> None:
        from qualitas.io.pairing import check_fps

        note = check_fps(dist_info, ref_info, allow_mismatch=self.options.allow_fps_mismatch)
        if note:
            res.notes.append(note)

    def _frame_loop(
        self,
        res: Result,
        metrics: _Metrics,
        dist_it: Iterator,
        ref_it: Iterator | None,
        ref_hw: tuple[int, int],
        frames: dict[int, FrameScores],
        bar,
        prep: _StreamPrep | None = None,
        failed: dict[str, BaseException] | None = None,
    ) -> tuple[int, int | None]:
        """Score batches in lockstep; returns the decoded frame counts (dist, ref).

        Items are ``FrameBatch`` or, from :meth:`_StreamPrep.attach`, ``(FrameBatch, prepared)``.
        """
        opts = self.options
        n_dist = n_ref = 0
        try:
            while True:
                db, pd = _split(next(dist_it, None))
                rb, pr = _split(next(ref_it, None) if ref_it is not None else None)
                if db is None or (ref_it is not None and rb is None):
                    n_dist += 0 if db is None else len(db.indices)
                    n_ref += 0 if rb is None else len(rb.indices)
                    break
                nd = len(db.indices)
                n = nd if rb is None else min(nd, len(rb.indices))
                n_dist += nd
                n_ref += 0 if rb is None else len(rb.indices)
                dist = None if db.data is None else db.data[:n]
                ref = None
                prepared = None
                if rb is not None:
                    ref = None if rb.data is None else rb.data[:n].to(opts.device, non_blocking=True)
                    if dist is not None:
                        dist = _match(dist, ref_hw, opts.on_size_mismatch)
                    if pd is not None and pr is not None:  # made in the decoding threads
                        prepared = (_take(pd, n), _take(pr, n))
                    elif prep is not None and prep.use_luma:
                        dl = _match(db.luma[:n], ref_hw, opts.on_size_mismatch)
                        prepared = (prep.from_luma(dl), prep.from_luma(rb.luma[:n]))
                if dist is not None:
                    dist = dist.to(opts.device, non_blocking=True)
                results = self._call_frame_metrics(metrics.frame, dist, ref, prepared, failed)
                per_metric = {name: v.tolist() for name, v in results.items()}
                for j in range(n):
                    idx = int(db.indices[j])
                    frames[idx] = FrameScores(
                        idx, float(db.times[j]), {name: float(v[j]) for name, v in per_metric.items()}
                    )
                bar.update(n)
                if rb is not None and n < max(nd, len(rb.indices)):
                    break
            # One stream ended: count what is left of the other (decoded, not scored), so
            # that both frame counts are reported.
            n_dist += sum(len(_split(b)[0].indices) for b in dist_it)
            if ref_it is not None:
                n_ref += sum(len(_split(b)[0].indices) for b in ref_it)
        finally:
            for it in (dist_it, ref_it):
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        return n_dist, (n_ref if ref_it is not None else None)


class _ConvertLate(Iterator[Any]):
    """``DecodedBatch`` items from ``source`` (a :class:`prefetch`) converted to ``FrameBatch``
    in the consumer's thread, always into the same tensors (valid until the next item)."""

    def __init__(self, source: prefetch, rgb: bool = True, luma: bool = False) -> None:
        self.source = source
        self.rgb, self.luma = rgb, luma
        self.buffer: torch.Tensor | None = None
        self.luma_buffer: torch.Tensor | None = None

    def __next__(self) -> Any:
        batch = next(self.source).to_batch(
            self.buffer, rgb=self.rgb, luma=self.luma, luma_out=self.luma_buffer
        )
        if batch.data is not None and (
            self.buffer is None or batch.data.data_ptr() != self.buffer.data_ptr()
        ):
            self.buffer = batch.data
        if batch.luma is not None and (
            self.luma_buffer is None or batch.luma.data_ptr() != self.luma_buffer.data_ptr()
        ):
            self.luma_buffer = batch.luma
        return batch

    def close(self) -> None:
        self.source.close()


class _StreamPrep:
    """Per-stream inputs of a run's shared-input metrics (``shared_input`` + ``prepare``, e.g.
    SSIM, MS-SSIM, PSNR-Y), computed from one stream's batch, RGB or luma.

    Each shared input is made once per batch (``prepare(rgb)``, or ``prepare_luma(luma)``
    when ``use_luma``) and refined per metric (``refine``, when the metric has it: SSIM's
    downsampling, MS-SSIM's scales). All of it depends on one stream only, so
    :meth:`attach` runs it in that stream's decoding thread. ``use_luma`` applies only when
    every such metric has ``prepare_luma``; the others read RGB as before.
    """

    def __init__(self, frame: Mapping[str, Any], use_luma: bool) -> None:
        self.metrics = {
            name: m
            for name, m in frame.items()
            if getattr(m, "shared_input", None) is not None and callable(getattr(m, "score_prepared", None))
        }
        self.luma_capable = bool(self.metrics) and all(
            callable(getattr(m, "prepare_luma", None)) for m in self.metrics.values()
        )
        self.use_luma = use_luma and self.luma_capable

    def needs_rgb(self, frame: Mapping[str, Any]) -> bool:
        """Whether any metric of ``frame`` still reads the RGB batch."""
        return not self.use_luma or any(name not in self.metrics for name in frame)

    def _make(self, source: torch.Tensor, luma: bool) -> dict[str, Any]:
        shared: dict[str, Any] = {}
        out: dict[str, Any] = {}
        for name, metric in self.metrics.items():
            # A failure is kept for the metric that needs it (raised when it is scored), so
            # that one metric's refusal does not fail the stream for the others.
            try:
                key = metric.shared_input
                if key not in shared:
                    shared[key] = metric.prepare_luma(source) if luma else metric.prepare(source)
                if isinstance(shared[key], _Failed):
                    out[name] = shared[key]
                    continue
                refine = getattr(metric, "refine", None)
                out[name] = refine(shared[key]) if callable(refine) else shared[key]
            except INPUT_ERRORS as err:
                out[name] = _Failed(err)
                shared.setdefault(metric.shared_input, out[name])
        return out

    def from_rgb(self, rgb: torch.Tensor) -> dict[str, Any]:
        return self._make(rgb, luma=False)

    def from_luma(self, luma: torch.Tensor) -> dict[str, Any]:
        return self._make(luma, luma=True)

    def of_batch(self, batch: Any) -> dict[str, Any]:
        return self.from_luma(batch.luma) if self.use_luma else self.from_rgb(batch.data)

    def attach(self, batches: Iterable[Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """``(batch, prepared)`` for each batch (run it in the producing thread)."""
        for batch in batches:
            yield batch, self.of_batch(batch)

    @staticmethod
    def scorer(metric: Any) -> Callable[[Any, Any], torch.Tensor]:
        """The function that scores a pair of this metric's prepared inputs."""
        refined = getattr(metric, "score_refined", None)
        return (
            refined
            if callable(getattr(metric, "refine", None)) and callable(refined)
            else metric.score_prepared
        )


@dataclass(frozen=True)
class _Failed:
    """A per-stream prepared input whose preparation raised ``error`` (see :meth:`_StreamPrep._make`)."""

    error: BaseException


def _take(value: Any, n: int) -> Any:
    """The first ``n`` items of the batch axis of a prepared input (tensors, lists, tuples, dicts)."""
    if isinstance(value, torch.Tensor):
        return value if value.dim() == 0 else value[:n]
    if isinstance(value, dict):
        return {k: _take(v, n) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_take(v, n) for v in value)
    return value


def _split(item: Any) -> tuple[Any, dict[str, Any] | None]:
    """A frame-loop item -> (FrameBatch or None, prepared inputs or None)."""
    if isinstance(item, tuple):
        return item
    return item, None


def _expected_frames(counts: Sequence[int | None], opts: ScoreOptions) -> int | None:
    """Frames the loop will score (for the progress bar): common count after step/max."""
    known = [c for c in counts if c]
    if not known:
        return opts.max_frames
    n = math.ceil(min(known) / opts.frame_step)
    return n if opts.max_frames is None else min(n, opts.max_frames)


def _wait_quietly(futures: Iterable[Future]) -> None:
    """Wait for background work whose result is no longer wanted (its errors ignored)."""
    for fut in futures:
        fut.exception()


def _run_in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future:
    """Run ``fn`` in a fresh thread (the libvmaf subprocess waits there, not in our loop)."""
    fut: Future = Future()

    def target() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - delivered through the future
            fut.set_exception(err)

    threading.Thread(target=target, name="qualitas-files-metric", daemon=True).start()
    return fut


# --------------------------------------------------------------------------- public API


@dataclass
class Pair:
    """One input to score: distorted path, reference path (or None), pairing error."""

    dist: str
    ref: str | None = None
    error: str | None = None


def collect(dists: Sequence[str | os.PathLike], ref: str | os.PathLike | None) -> list[Pair]:
    """Expand files/folders into pairs (``qualitas.io.pairing.collect_pairs``)."""
    from qualitas.io.pairing import collect_pairs

    return [
        Pair(str(p.dist), None if p.ref is None else str(p.ref), getattr(p, "error", None))
        for p in collect_pairs([Path(d) for d in dists], None if ref is None else Path(ref))
    ]


def torch_threads_for(jobs: int, cpus: int | None = None) -> int:
    """Default torch threads: the cores divided between the jobs, minus one left to decoding.

    Decoding (two FFmpeg decoders per video pair, in background threads) needs CPU too, and
    OpenMP teams that are larger than the free cores spin and stall each other: on a busy
    2-core machine one metric thread scored twice as fast as two (docs/benchmarks.md).
    """
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // jobs - 1)


@dataclass
class Session:
    """A loaded metric set, ready to score one pair at a time.

    What :func:`score_pairs`, the Ray actors (:mod:`qualitas.runtime.distributed`) and the
    service (:mod:`qualitas.serve`) share: metrics and models are built once, then
    :meth:`score` may be called from several threads (the engine's ``--jobs`` does so).
    """

    built: _Metrics
    all_names: list[str]
    metrics: list[str] | None
    has_ref: bool
    defaults_used: bool
    scorer: _Scorer

    @property
    def infos(self) -> dict[str, MetricInfo]:
        """``{name: MetricInfo}`` of every metric and model of the run."""
        return dict(self.built.infos)

    def names_for(self, pair: Pair) -> list[str]:
        """The metrics of one pair: the run's, or the defaults of its media kind."""
        if not self.defaults_used:
            return list(self.built.infos)
        kind = _guess_kind(pair.dist) or "image"
        return default_metrics(kind, self.has_ref)

    def score(self, pair: Pair) -> Result:
        """Score one pair; a bad input is a :class:`Result` with ``error``, never an exception."""
        return self.scorer.score(pair.dist, pair.ref, self.names_for(pair), pair.error)


def open_session(
    metrics: Sequence[str] | None,
    options: ScoreOptions,
    *,
    scorers: Mapping[str, Any] | None = None,
    has_ref: bool = False,
    kinds: Iterable[str] = (),
    progress: Progress = NULL_PROGRESS,
) -> Session:
    """Validate the metric names and build every metric once (see :func:`score_pairs`).

    ``kinds`` (``"image"``/``"video"``) picks the default metrics when ``metrics`` is empty
    and no ``scorers`` are given.
    """
    if not metrics and scorers:
        all_names: list[str] = []
    else:
        all_names = resolve_metrics(metrics, has_ref, sorted(kinds) or ["image"])
    for name, scorer in (scorers or {}).items():
        info = getattr(scorer, "info", None)
        if info is not None and info.full_reference and not has_ref:
            raise UsageError(f"model '{name}' is full-reference: give --ref REF")
    built = _build_metrics(all_names, options.device, scorers)
    defaults_used = not metrics and not scorers
    scorer = _Scorer(built, options, progress, defaults_used=defaults_used)
    return Session(built, all_names, list(metrics) if metrics else None, has_ref, defaults_used, scorer)


def score_pairs(
    pairs: Sequence[Pair],
    metrics: Sequence[str] | None = None,
    options: ScoreOptions | None = None,
    *,
    scorers: Mapping[str, Any] | None = None,
    has_ref: bool | None = None,
    progress: Progress = NULL_PROGRESS,
    on_result: Callable[[int, Result], None] | None = None,
    timeout: float | None = None,
    scorers_factory: Callable[[], Mapping[str, Any]] | None = None,
) -> tuple[list[Result], dict[str, MetricInfo]]:
    """Score already-paired inputs; returns ``(results in input order, {name: MetricInfo})``.

    ``metrics=None`` (and no ``scorers``) uses :func:`default_metrics` for each input's kind.
    ``scorers`` adds frame scorers that are not registered metrics (``--model``; see
    :func:`_build_metrics`). ``has_ref`` says whether a reference was given (default: any
    pair has one); it decides whether full-reference metrics are allowed.

    ``on_result(i, result)`` is called as soon as input ``i`` is done (in completion order),
    e.g. to stream it to a file. ``timeout`` (seconds per input) scores every input in a
    child process (:mod:`qualitas.runtime.isolate`) that is killed when the input takes
    longer; the input then gets an error and the batch goes on. Those processes make their
    own ``scorers`` with ``scorers_factory`` (picklable; needed when ``scorers`` is given).
    """
    opts = options or ScoreOptions()
    opts.validate()
    if timeout is not None and not timeout > 0:
        raise UsageError(f"timeout must be > 0 seconds, got {timeout}")
    if has_ref is None:
        has_ref = any(p.ref is not None for p in pairs)
    kinds = {_guess_kind(p.dist) for p in pairs if p.error is None}
    kinds.discard(None)
    session = open_session(metrics, opts, scorers=scorers, has_ref=has_ref, kinds=kinds)  # type: ignore[arg-type]
    built, all_names, names_for = session.built, session.all_names, session.names_for
    defaults_used = session.defaults_used
    if timeout is not None:
        if scorers and scorers_factory is None:
            raise UsageError("a timeout with model scorers needs scorers_factory (to load them in the child)")
        from qualitas.runtime.isolate import score_isolated

        results = score_isolated(
            pairs,
            [names_for(p) for p in pairs],
            all_names,
            opts,
            timeout=timeout,
            scorers_factory=scorers_factory if scorers else None,
            defaults_used=defaults_used,
            progress=progress,
            on_result=on_result,
        )
        return results, dict(built.infos)

    if opts.jobs > 1:
        progress = Progress(progress.enabled, frame_bars=False, stream=progress.stream)
    scorer = _Scorer(built, opts, progress, defaults_used=defaults_used)
    results: list[Result | None] = [None] * len(pairs)

    def done(i: int, res: Result) -> None:
        results[i] = res
        if on_result is not None:
            on_result(i, res)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(opts.threads or torch_threads_for(opts.jobs))
    try:
        with progress.files(len(pairs)) as bar:
            if opts.jobs == 1:
                for i, pair in enumerate(pairs):
                    done(i, scorer.score(pair.dist, pair.ref, names_for(pair), pair.error))
                    bar.update(1)
            else:
                from concurrent.futures import as_completed

                with ThreadPoolExecutor(max_workers=opts.jobs, thread_name_prefix="qualitas-job") as pool:
                    futures = {
                        pool.submit(scorer.score, p.dist, p.ref, names_for(p), p.error): i
                        for i, p in enumerate(pairs)
                    }
                    for fut in as_completed(futures):
                        done(futures[fut], fut.result())
                        bar.update(1)
    finally:
        torch.set_num_threads(previous_threads)
    return [r for r in results if r is not None], dict(built.infos)


def score_paths(
    dists: Sequence[str | os.PathLike],
    ref: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    options: ScoreOptions | None = None,
    *,
    progress: Progress = NULL_PROGRESS,
) -> list[Result]:
    """Score files/folders ``dists`` (against ``ref`` when given) -> one :class:`Result` each.

    Example::

        results = score_paths(["dist.mp4"], ref="ref.mp4", metrics=["psnr", "ssim"],
                              options=ScoreOptions(frame_step=2))
    """
    results, _ = score_pairs(collect(dists, ref), metrics, options, progress=progress)
    return results


__all__ = [
    "FrameScores",
    "Pair",
    "Result",
    "ScoreOptions",
    "Session",
    "auto_batch_size",
    "collect",
    "default_metrics",
    "open_session",
    "pool_scores",
    "prefetch",
    "resolve_metrics",
    "score_pairs",
    "score_paths",
    "torch_threads_for",
]

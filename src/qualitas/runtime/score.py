"""The scoring engine behind ``qualitas score``: its public API.

``score_paths(dists, ref, metrics, options) -> list[Result]`` pairs the inputs, scores every
pair and never lets one bad input stop the batch: a file that cannot be read, decoded or
paired gets ``Result.error`` (one line) and the others are still scored.

Videos are streamed: the distorted and reference files are decoded in lockstep, each in
its own background thread (decoding overlaps the metric maths), in batches whose size is
bounded by a pixel budget so that memory stays flat in the clip length. Files metrics
(VMAF through libvmaf, video models) run over the whole files in their own threads, in
parallel with the frame metrics, and their per-frame scores are merged by frame index.

The engine is split by concern (docs/architecture.md): :mod:`~qualitas.runtime.options`
(options, results, the one ``Pair``), :mod:`~qualitas.runtime.metric_set` (which metrics),
:mod:`~qualitas.runtime.pooling`, :mod:`~qualitas.runtime.threads` (prefetch, files-metric
threads, torch threads), :mod:`~qualitas.runtime.prepared` (shared metric inputs),
:mod:`~qualitas.runtime.calls` (per-batch metric calls), :mod:`~qualitas.runtime.image` and
:mod:`~qualitas.runtime.video` (the two paths), :mod:`~qualitas.runtime.engine` (one input).
Their public names are re-exported here, the engine's home until now.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qualitas.errors import UsageError
from qualitas.metrics.base import MetricInfo
from qualitas.runtime.calls import MetricCalls  # noqa: F401
from qualitas.runtime.engine import _Scorer
from qualitas.runtime.inputs import _check_readable, _guess_kind, _kind_of, _match, _size_check  # noqa: F401
from qualitas.runtime.metric_set import (  # noqa: F401
    _MODEL_SUFFIXES,
    MetricSet,
    _build_metrics,
    _Metrics,
    build_metrics,
    default_metrics,
    metric_info,
    resolve_metrics,
)
from qualitas.runtime.options import (  # noqa: F401
    BATCH_PIXEL_BUDGET,
    INPUT_ERRORS,
    MAX_AUTO_BATCH,
    POOLS,
    SIZE_POLICIES,
    FrameScores,
    Pair,
    Result,
    ScoreOptions,
    collect,
)
from qualitas.runtime.pooling import frame_stats, pool_scores  # noqa: F401
from qualitas.runtime.prepared import _Failed, _split, _StreamPrep, _take  # noqa: F401
from qualitas.runtime.progress import NULL_PROGRESS, Progress
from qualitas.runtime.threads import (  # noqa: F401
    _ConvertLate,
    _run_in_thread,
    _wait_quietly,
    auto_batch_size,
    prefetch,
    torch_threads,
    torch_threads_for,
)
from qualitas.runtime.video import _expected_frames  # noqa: F401

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    pass


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
    built = build_metrics(all_names, options.device, scorers, options)
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
    :func:`~qualitas.runtime.metric_set.build_metrics`). ``has_ref`` says whether a reference was given (default: any
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

    # torch is loaded for the threads setting unless every input is a video whose metrics
    # may all take the YUV fast path (which does not use torch).
    from qualitas.metrics.fr_yuv import FAST_METRICS

    load = not all(n in FAST_METRICS for n in built.frame) or any(
        _guess_kind(p.dist) != "video" for p in pairs
    )
    with torch_threads(opts.threads or torch_threads_for(opts.jobs), load=load):
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
    "MetricSet",
    "Pair",
    "Result",
    "ScoreOptions",
    "Session",
    "auto_batch_size",
    "collect",
    "build_metrics",
    "default_metrics",
    "frame_stats",
    "open_session",
    "pool_scores",
    "prefetch",
    "resolve_metrics",
    "score_pairs",
    "score_paths",
    "torch_threads_for",
]

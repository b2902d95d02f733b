"""The video pass of one input, in three parts a reader can follow:

1. :func:`open_streams`: probe both files, apply the fps and size policies, choose RGB
   and/or luma planes and where per-stream preparation runs, and open the (prefetched)
   batch iterators of the distorted and reference streams;
2. :func:`frame_loop`: score the batches of both streams in lockstep with every frame
   metric, one :class:`FrameScores` per frame;
3. :func:`merge_files_scores` and :func:`pool_frames`: add the per-frame scores of the files
   metrics (VMAF, video models, which ran in their own threads over the whole files) by
   frame index, then pool each metric over its frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualitas.errors import MediaError
from qualitas.runtime import options as _options
from qualitas.runtime.calls import MetricCalls
from qualitas.runtime.inputs import _match, _size_check
from qualitas.runtime.metric_set import MetricSet
from qualitas.runtime.options import INPUT_ERRORS, FrameScores, Result, ScoreOptions
from qualitas.runtime.pooling import frame_stats, pool_scores
from qualitas.runtime.prepared import _split, _StreamPrep, _take
from qualitas.runtime.threads import _ConvertLate, _wait_quietly, auto_batch_size, prefetch


@dataclass
class Streams:
    """The opened streams of one video pair (:func:`open_streams`)."""

    dist: Iterator
    ref: Iterator | None
    prep: _StreamPrep
    total: int | None
    """Frames the loop is expected to score (for the progress bar)."""


def score_video(calls: MetricCalls, res: Result, metrics: MetricSet) -> None:
    """Score one video (and its reference) into ``res``: streams, frame loop, merge, pool."""
    from qualitas.io.video import probe_video

    opts = calls.options
    dist_yuv = opts.yuv_for(res.path)
    ref_yuv = None if res.ref is None else opts.yuv_for(res.ref, is_ref=True)
    dinfo = probe_video(res.path, yuv=dist_yuv)
    rinfo = probe_video(res.ref, yuv=ref_yuv) if res.ref is not None else None
    _check_raw_layout(res, [(res.path, dist_yuv, ""), (res.ref, ref_yuv, "reference ")])
    width, height = dinfo.width, dinfo.height
    if rinfo is not None:
        _fps_check(res, dinfo, rinfo, opts)
        _size_check(res, (dinfo.width, dinfo.height), (rinfo.width, rinfo.height), opts.on_size_mismatch)
        width, height = rinfo.width, rinfo.height
    res.width, res.height = int(width), int(height)

    files = calls._start_files_metrics(res, metrics)
    frames: dict[int, FrameScores] = {}
    failed: dict[str, BaseException] = {}
    fast = yuv_fast_scorer(metrics, opts, dinfo, rinfo)
    if fast is not None or metrics.frame:
        try:
            if fast is not None:
                # psnr/psnr_y/ssim/ms_ssim of two same-size YUV videos: from the decoded
                # planes (qualitas.metrics.fr_yuv), no float frames.
                counts = yuv_frame_loop(calls, res, fast, dinfo, rinfo, frames, failed)
            else:
                streams = open_streams(res, metrics, opts, dinfo, rinfo, (width, height))
                with calls.progress.frames(streams.total, Path(res.path).name) as bar:
                    counts = frame_loop(calls, metrics, streams, (height, width), frames, bar, failed)
        except BaseException:
            _wait_quietly(files.values())  # no libvmaf process outlives the failed input
            raise
        res.dist_frames, res.ref_frames = counts
        if res.ref is not None and counts[0] != counts[1]:
            res.notes.append(
                f"frame counts differ: distorted {counts[0]} vs reference {counts[1]}; "
                f"scored the first {min(counts)}"
            )
    merge_files_scores(calls, files, frames, failed)
    res.frames = [frames[i] for i in sorted(frames)]
    if not res.frames and failed:  # only files metrics, and they failed: say why
        res.frames = None
        calls._settle_failures(res, failed)
        return
    if not res.frames:
        raise MediaError("no frames could be decoded")
    pool_frames(res, metrics, failed, opts)
    if not metrics.frame:
        _count_without_decoding(res, opts)
    calls._settle_failures(res, failed)


def yuv_fast_scorer(metrics: MetricSet, opts: ScoreOptions, dinfo: Any, rinfo: Any | None) -> Any:
    """A :class:`~qualitas.metrics.fr_yuv.YuvFrameScorer` when this pair can take the fast
    path (both planar YUV, same size, unrotated, cpu, only metrics it computes), else None."""
    from qualitas.io.video import has_luma_plane
    from qualitas.metrics import fr_yuv

    if rinfo is None or not metrics.frame or not fr_yuv.serves(metrics.frame) or opts.device != "cpu":
        return None
    if (dinfo.width, dinfo.height) != (rinfo.width, rinfo.height) or dinfo.rotation or rinfo.rotation:
        return None
    if not (has_luma_plane(dinfo.pix_fmt) and has_luma_plane(rinfo.pix_fmt)):
        return None
    if not fr_yuv.fast_path_enabled():
        return None
    return fr_yuv.YuvFrameScorer(list(metrics.frame))


def yuv_frame_loop(
    calls: MetricCalls,
    res: Result,
    fast: Any,
    dinfo: Any,
    rinfo: Any,
    frames: dict[int, FrameScores],
    failed: dict[str, BaseException],
) -> tuple[int, int]:
    """The frame loop of the YUV fast path: each stream decoded and prepared in its own
    thread, the pair scored here; per-metric errors go to ``failed`` as in :func:`frame_loop`.
    Returns the decoded frame counts (dist, ref)."""
    from qualitas.io.video import iter_yuv_frames

    opts = calls.options
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
        with calls.progress.frames(total, Path(res.path).name) as bar:
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
    finally:
        for it in its:
            it.close()  # generators and prefetch threads alike
    return counts[0], counts[1]


def open_streams(
    res: Result,
    metrics: MetricSet,
    opts: ScoreOptions,
    dinfo: Any,
    rinfo: Any | None,
    size: tuple[int, int],
) -> Streams:
    """Open the batch iterators of both streams of ``res`` at the reference ``size`` (W, H)."""
    from qualitas.io.video import has_luma_plane, iter_batches, iter_decoded_batches

    width, height = size
    dist_yuv = opts.yuv_for(res.path)
    ref_yuv = None if res.ref is None else opts.yuv_for(res.ref, is_ref=True)
    batch = auto_batch_size(max(dinfo.width, width), max(dinfo.height, height), opts.batch_size)
    total = _expected_frames([dinfo.num_frames] + ([rinfo.num_frames] if rinfo is not None else []), opts)
    kw: dict[str, Any] = {"frame_step": opts.frame_step, "max_frames": opts.max_frames, "batch_size": batch}
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
        batch == 1 and 2 * max(dinfo.width, width) * max(dinfo.height, height) > _options.BATCH_PIXEL_BUDGET
    )
    if opts.prefetch and large:
        dist_it: Iterator = _ConvertLate(
            prefetch(iter_decoded_batches(res.path, yuv=dist_yuv, **kw)), **planes
        )
        ref_it: Iterator | None = None
        if res.ref is not None:
            ref_it = _ConvertLate(prefetch(iter_decoded_batches(res.ref, yuv=ref_yuv, **kw)), **planes)
        return Streams(dist_it, ref_it, prep, total)
    # Batch tensors are recycled (fresh ones cost ~10 ms of page faults per 1080p frame
    # pair): the loop is done with a batch when it asks for the next one, and the
    # prefetching thread decodes one batch ahead, hence two buffers.
    kw["reuse_buffer"] = 2 if opts.prefetch else 1
    dist_it = iter_batches(res.path, yuv=dist_yuv, **kw, **planes)
    ref_it = iter_batches(res.ref, yuv=ref_yuv, **kw, **planes) if res.ref is not None else None
    if opts.prefetch:
        if early:
            dist_it, ref_it = prep.attach(dist_it), prep.attach(ref_it)
        dist_it = prefetch(dist_it)
        ref_it = prefetch(ref_it) if ref_it is not None else None
    return Streams(dist_it, ref_it, prep, total)


def frame_loop(
    calls: MetricCalls,
    metrics: MetricSet,
    streams: Streams,
    ref_hw: tuple[int, int],
    frames: dict[int, FrameScores],
    bar: Any,
    failed: dict[str, BaseException],
) -> tuple[int, int | None]:
    """Score batches in lockstep; returns the decoded frame counts (dist, ref).

    Items are ``FrameBatch`` or, from :meth:`_StreamPrep.attach`, ``(FrameBatch, prepared)``.
    """
    opts = calls.options
    dist_it, ref_it, prep = streams.dist, streams.ref, streams.prep
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
            results = calls._call_frame_metrics(metrics.frame, dist, ref, prepared, failed)
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
            close = getattr(it, "close", None)  # generators, prefetch and _ConvertLate all have one
            if close is not None:
                close()
    return n_dist, (n_ref if ref_it is not None else None)


def merge_files_scores(
    calls: MetricCalls,
    files: dict[str, Future],
    frames: dict[int, FrameScores],
    failed: dict[str, BaseException],
) -> None:
    """Add each files metric's per-frame scores to ``frames`` by frame index (a frame that
    only the files metric scored gets its own :class:`FrameScores`)."""
    for name, fut in files.items():
        vres = calls._files_result(name, fut, failed)
        if vres is None:
            continue
        for index, time, score in vres.frames:
            fs = frames.get(int(index))
            if fs is None:
                fs = frames[int(index)] = FrameScores(int(index), None if time is None else float(time))
            fs.scores[name] = float(score)


def pool_frames(
    res: Result, metrics: MetricSet, failed: dict[str, BaseException], opts: ScoreOptions
) -> None:
    """Pooled scores, per-metric frame statistics and NaN notes of ``res.frames``."""
    frames = res.frames or []
    # A metric that failed part-way is dropped from every frame: a score pooled over
    # only the frames before the failure would look complete and be wrong.
    for f in frames:
        for name in failed:
            f.scores.pop(name, None)
    # Pool each metric over the frames that have it (all of them, unless VMAF and the
    # frame metrics saw different frame counts).
    names = [n for n in list(metrics.frame) + list(metrics.files) if n not in failed]
    for name in names:
        values = [f.scores[name] for f in frames if name in f.scores]
        res.scores[name] = pool_scores(values, opts.pool, metrics.infos[name].higher_is_better)
        res.stats[name] = frame_stats(values)
        n_nan = sum(1 for v in values if math.isnan(v))
        if n_nan:
            res.notes.append(
                f"{name} is NaN on {n_nan} of {len(values)} frames: undefined there (e.g. flat "
                "frames, no texture)"
            )
    res.frames_scored = max((sum(1 for f in frames if name in f.scores) for name in names), default=0)


def _check_raw_layout(res: Result, inputs: Sequence[tuple[str | None, Any, str]]) -> None:
    """Raw YUV has no header: warn (a note) when the samples do not fit the declared layout."""
    from qualitas.io.yuv import layout_warnings

    for path, spec, what in inputs:
        if path is None or spec is None:
            continue
        res.notes += [f"{what}raw YUV: {w}" for w in layout_warnings(path, spec)]


def _count_without_decoding(res: Result, opts: ScoreOptions) -> None:
    """Files metrics only (a VMAF-only run decodes nothing here): count both sides'
    frames by demuxing, so a length mismatch is reported as in frame-metric runs."""
    from qualitas.io.video import count_frames

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


def _fps_check(res: Result, dist_info: Any, ref_info: Any, opts: ScoreOptions) -> None:
    from qualitas.io.pairing import check_fps

    note = check_fps(dist_info, ref_info, allow_mismatch=opts.allow_fps_mismatch)
    if note:
        res.notes.append(note)


def _expected_frames(counts: Sequence[int | None], opts: ScoreOptions) -> int | None:
    """Frames the loop will score (for the progress bar): common count after step/max."""
    known = [c for c in counts if c]
    if not known:
        return opts.max_frames
    n = math.ceil(min(known) / opts.frame_step)
    return n if opts.max_frames is None else min(n, opts.max_frames)

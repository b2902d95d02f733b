"""The image path of one input: read both images, apply the size policy, call every frame
metric once and take the files metrics' single score."""

from __future__ import annotations

import math

from qualitas.runtime.calls import MetricCalls
from qualitas.runtime.inputs import _match, _size_check
from qualitas.runtime.metric_set import MetricSet
from qualitas.runtime.options import Result
from qualitas.runtime.threads import _wait_quietly


def score_image(calls: MetricCalls, res: Result, metrics: MetricSet) -> None:
    """Score one image (and its reference) into ``res``."""
    from qualitas.io.image import read_image

    opts = calls.options
    dist = read_image(res.path).data.unsqueeze(0)
    ref = None
    if res.ref is not None:
        ref = read_image(res.ref).data.unsqueeze(0)
        rh, rw = ref.shape[-2:]
        _size_check(res, (dist.shape[-1], dist.shape[-2]), (rw, rh), opts.on_size_mismatch)
        dist = _match(dist, (rh, rw), opts.on_size_mismatch)
    res.height, res.width = (int(s) for s in dist.shape[-2:])
    files = calls._start_files_metrics(res, metrics)
    dist = dist.to(opts.device)
    ref = None if ref is None else ref.to(opts.device)
    failed: dict[str, BaseException] = {}
    try:
        for name, value in calls._call_frame_metrics(metrics.frame, dist, ref, None, failed).items():
            res.scores[name] = float(value[0])
    except BaseException:
        _wait_quietly(files.values())
        raise
    for name, fut in files.items():
        vres = calls._files_result(name, fut, failed)
        if vres is not None:
            res.scores[name] = float(vres.frames[0].score)
    res.frames_scored = 1 if res.scores else 0
    for name, value in res.scores.items():
        if math.isnan(value):
            res.notes.append(f"{name} is NaN: undefined on this input (e.g. a flat image, no texture)")
    calls._settle_failures(res, failed)

"""Per-batch metric calls of one input: every frame metric on a batch (from prepared
inputs where a metric shares one), one metric's failure kept to that metric, files metrics
started in their own threads, and failures settled into errors or skip notes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from qualitas.errors import MediaError, one_line
from qualitas.runtime.metric_set import _Metrics
from qualitas.runtime.options import INPUT_ERRORS, Result, ScoreOptions
from qualitas.runtime.prepared import _Failed, _StreamPrep
from qualitas.runtime.progress import Progress
from qualitas.runtime.threads import _run_in_thread

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    import torch


class MetricCalls:
    """Calls the metrics of a run on one input's batches (shared by the image and video paths)."""

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
        import torch

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

    # -- files metrics (VMAF, video models): each in its own thread over the whole files
    def _start_files_metrics(self, res: Result, metrics: _Metrics) -> dict[str, Future]:
        """Start every files metric of ``metrics`` on ``res``'s files (frame selection as the
        options say; each metric turns it into its own terms)."""
        opts = self.options
        return {
            name: _run_in_thread(
                metric.score_files,
                res.path,
                res.ref,
                frame_step=opts.frame_step,
                max_frames=opts.max_frames,
                yuv_dist=opts.yuv_for(res.path),
                yuv_ref=None if res.ref is None else opts.yuv_for(res.ref, is_ref=True),
            )
            for name, metric in metrics.files.items()
        }

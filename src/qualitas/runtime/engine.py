"""The scorer of one run: one input at a time, its media kind decided once, a bad input
recorded as the result's error (never an exception) and the others still scored."""

from __future__ import annotations

from collections.abc import Sequence

from qualitas.errors import MediaError, one_line
from qualitas.runtime.calls import MetricCalls
from qualitas.runtime.image import score_image
from qualitas.runtime.inputs import _check_readable, _guess_kind, _kind_of
from qualitas.runtime.options import INPUT_ERRORS, Result
from qualitas.runtime.video import score_video


class _Scorer(MetricCalls):
    """Scores pairs with a fixed set of metrics and options (one per run, thread-safe)."""

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
        # res.kind was guessed when the result was made; only an unknown kind is asked again
        # (for its error message).
        kind = res.kind or _kind_of(res.path)
        res.kind = kind
        if res.ref is not None:
            _check_readable(res.ref, "reference ")
            ref_kind = _kind_of(res.ref)
            if ref_kind != kind:
                raise MediaError(f"cannot compare a {kind} with a {ref_kind} reference: {res.ref}")
        metrics = self.metrics.subset(names)
        if kind == "image":
            score_image(self, res, metrics)
        else:
            score_video(self, res, metrics)


Scorer = _Scorer

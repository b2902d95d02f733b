"""Which metrics a run scores: the defaults, name checks (a model named as a metric, a
full-reference metric without a reference), and :class:`MetricSet`, the built metric
objects split by what they take (frame batches, or whole files: VMAF, video models)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qualitas.errors import UsageError
from qualitas.metrics.base import FileMetric, MetricInfo
from qualitas.runtime.options import ScoreOptions

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    import torch


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


@dataclass
class MetricSet:
    """The metric objects of a run, split by what they take.

    ``frame``: called on frame batches, ``metric(dist (B,3,H,W), ref | None) -> (B,)``;
    ``files``: :class:`~qualitas.metrics.base.FileMetric` objects scoring whole files (VMAF,
    video models), in the order of the run.
    """

    infos: dict[str, MetricInfo]
    frame: dict[str, Callable[..., torch.Tensor]]
    files: dict[str, FileMetric] = field(default_factory=dict)

    def subset(self, names: Sequence[str]) -> MetricSet:
        return MetricSet(
            {n: self.infos[n] for n in names},
            {n: m for n, m in self.frame.items() if n in names},
            {n: m for n, m in self.files.items() if n in names},
        )


_Metrics = MetricSet  # its old private name


def build_metrics(
    names: Sequence[str],
    device: str,
    scorers: Mapping[str, Any] | None = None,
    options: ScoreOptions | None = None,
) -> MetricSet:
    """Instantiate registered metrics ``names`` plus ready-made ``scorers`` (e.g. a model).

    A scorer is anything with ``info: MetricInfo`` (``kind="frames"``) that is callable as
    ``scorer(dist (B,3,H,W), ref (B,3,H,W) | None) -> (B,)``, exactly like a frame metric,
    or (``kind="files"``, e.g. a video model scoring clips) a
    :class:`~qualitas.metrics.base.FileMetric` like VMAF. ``options`` give the registered
    metrics their own settings (:meth:`ScoreOptions.metric_kwargs`).
    """
    from qualitas.metrics import get_metric

    opts = options or ScoreOptions(device=device)
    infos = {n: metric_info(n) for n in names}
    unknown = [n for n, i in infos.items() if i.kind not in ("frames", "files")]
    built = {
        n: get_metric(n, device=device, **opts.metric_kwargs(n))
        for n, i in infos.items()
        if i.kind in ("frames", "files")
    }
    frame = {n: m for n, m in built.items() if infos[n].kind == "frames"}
    files: dict[str, FileMetric] = {}
    for n, m in built.items():
        if infos[n].kind == "files":
            if not isinstance(m, FileMetric):
                raise UsageError(f"metric '{n}' runs on files but has no score_files")
            files[n] = m
    for name, scorer in (scorers or {}).items():
        info = getattr(scorer, "info", None)
        if name in infos:
            raise UsageError(f"'{name}' is both a metric and a model name")
        if isinstance(info, MetricInfo) and info.kind == "files" and isinstance(scorer, FileMetric):
            infos[name] = info
            files[name] = scorer
            continue
        if not isinstance(info, MetricInfo) or info.kind != "frames" or not callable(scorer):
            raise UsageError(f"'{name}' cannot be scored frame by frame by this runtime")
        infos[name] = info
        frame[name] = scorer
    if unknown:
        raise UsageError(f"metric '{unknown[0]}' has an unsupported kind '{infos[unknown[0]].kind}'")
    return MetricSet(infos, frame, files)


_build_metrics = build_metrics  # its old private name

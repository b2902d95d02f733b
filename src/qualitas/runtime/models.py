"""Scoring with a trained or exported quality model, whatever its format.

``load_model(path)`` accepts a training run directory or ``.ckpt`` (PyTorch), an export
folder (its ``model.json``), or an exported file with its ``model.json`` beside it:
``.onnx`` (ONNX Runtime), TorchScript ``.pt``, ``torch.export`` ``.pt2``, OpenVINO
``.xml``. Everything the runtime needs — sizing, clip sampling, output mapping — comes
from the card (:class:`qualitas.export.card.ModelCard`); no training config is read.

The returned :class:`QualityModel`:

- ``score(x, ref=None) -> float``: ``x`` an image/video path, an image ``(3,H,W)`` or, for
  video models, a clip ``(T,3,H,W)`` (float ``[0, 1]``);
- ``score_batch(xs, refs=None) -> list[float]``;
- is a *scorer* for ``qualitas score --model`` (``qualitas.runtime.score``): image models
  are frame scorers (``info.kind == "frames"``, ``model(dist (B,3,H,W), ref) -> (B,)``),
  video models score whole files (``info.kind == "files"``, ``score_files``), one entry
  per clip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from qualitas.errors import MediaError, UsageError
from qualitas.export.card import CARD_FILE, DETECTION_OUTPUTS, ModelCard, read_card
from qualitas.export.common import Runner, to_mos
from qualitas.export.preprocess import prepare
from qualitas.metrics.base import MetricInfo

DEFAULT_BATCH = 16
"""Images per graph call (clips: ``max(1, DEFAULT_BATCH // T)``)."""

MediaLike = str | os.PathLike | torch.Tensor


class TorchRunner:
    """A PyTorch ``nn.Module`` (a training checkpoint) behind the runner interface."""

    format = "pytorch"

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.module = model.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*(x.to(self.device, torch.float32) for x in inputs)).float().cpu()


class ClipScore(NamedTuple):
    """One clip's score, reported at the clip's first frame (``index``, ``time`` in s)."""

    index: int
    time: float | None
    score: float


@dataclass(frozen=True)
class ClipScores:
    """Scores of a video by a video model: one per clip, and their mean."""

    frames: list[ClipScore]
    pooled: float
    clip_indices: list[list[int]]


class QualityModel:
    """A model and its card: scores media in MOS units (see the module docstring)."""

    def __init__(
        self, card: ModelCard, runner: Runner, *, source: str = "", batch_size: int | None = None
    ) -> None:
        if card.output.kind in DETECTION_OUTPUTS:  # a list of detections, not a tensor of scores
            raise UsageError(
                f"model '{card.name}' is a {card.output.kind} model, not a quality scorer: use qualitas predict"
            )
        self.card = card
        self.runner = runner
        self.source = source
        self.batch_size = int(batch_size or DEFAULT_BATCH)
        self.info = MetricInfo(
            name=card.name,
            full_reference=card.full_reference,
            higher_is_better=card.output.higher_is_better,
            range=card.score_range,
            input=card.describe_input(),
            kind="files" if card.video else "frames",
            reference=f"{getattr(runner, 'format', card.format)} model {source}".strip(),
        )

    def __repr__(self) -> str:
        kind = "FR" if self.card.full_reference else "NR"
        what = "video" if self.card.video else "image"
        return f"QualityModel({self.card.name!r}, {kind} {what}, {self.info.reference})"

    # ------------------------------------------------------------------ tensors

    def predict(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Graph inputs (already sized) -> scores ``(B,)`` in MOS units."""
        return to_mos(self.card, self.runner(*inputs))

    @torch.no_grad()
    def __call__(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """Frame-scorer interface: ``dist``/``ref`` ``(B,3,H,W)`` in ``[0, 1]`` -> ``(B,)``."""
        if self.card.video:
            raise UsageError(f"model '{self.card.name}' scores video clips, not single frames")
        self._check_ref(ref is not None)
        self._check_size(dist)
        x = prepare(self.card, dist.cpu(), None if ref is None else ref.cpu())
        out = [
            self.predict(*(t[i : i + self.batch_size] for t in x))
            for i in range(0, x[0].shape[0], self.batch_size)
        ]
        return torch.cat(out).to(dist.device)

    def _check_size(self, x: torch.Tensor) -> None:
        """Refuse inputs under the card's minimum size (``ModelCard.min_side``)."""
        h, w = int(x.shape[-2]), int(x.shape[-1])
        m = self.card.min_side()
        if min(h, w) < m:
            raise MediaError(f"{self.card.name} needs images at least {m}x{m} pixels, got {w}x{h}")

    # ------------------------------------------------------------------ public API

    def score(self, x: MediaLike, ref: MediaLike | None = None) -> float:
        """Score one input: an image/video path, an image ``(3,H,W)`` or a clip ``(T,3,H,W)``.

        Image models score a video as the mean over its frames; video models score it with
        the card's clip sampling (mean over clips).
        """
        self._check_ref(ref is not None)
        if _is_path(x):
            kind = _media_kind(x)
            if ref is not None and (not _is_path(ref) or _media_kind(ref) != kind):
                raise UsageError(f"the reference of a {kind} must be a {kind} file too")
            if kind == "video":
                if self.card.video:
                    return self.score_files(x, ref).pooled
                return self._score_video_frames(x, ref)
            if self.card.video:
                raise MediaError(self._image_refused(x))
            x = _read_image(x)
            ref = None if ref is None else _read_image(ref)
        return self.score_batch([x], None if ref is None else [ref])[0]

    def score_batch(self, xs: Sequence[MediaLike], refs: Sequence[MediaLike] | None = None) -> list[float]:
        """Score many inputs (paths or tensors, as :meth:`score`); same-size items share calls."""
        self._check_ref(refs is not None)
        if refs is not None and len(refs) != len(xs):
            raise UsageError(f"{len(xs)} inputs but {len(refs)} references")
        out: list[float | None] = [None] * len(xs)
        prepared: list[tuple[int, tuple[torch.Tensor, ...]]] = []
        for i, x in enumerate(xs):
            r = None if refs is None else refs[i]
            if _is_path(x) and (_media_kind(x) == "video" or self.card.video):
                out[i] = self.score(x, r)
                continue
            d = _read_image(x) if _is_path(x) else x
            rt = None if r is None else (_read_image(r) if _is_path(r) else r)
            prepared.append((i, self._prepare_item(d, rt)))
        # Group consecutive items of equal prepared shape into graph calls.
        k = 0
        while k < len(prepared):
            shape = prepared[k][1][0].shape
            group = [prepared[k]]
            while (
                k + len(group) < len(prepared)
                and len(group) < self._batch()
                and prepared[k + len(group)][1][0].shape == shape
            ):
                group.append(prepared[k + len(group)])
            inputs = tuple(torch.stack([g[1][j] for g in group]) for j in range(len(group[0][1])))
            for (i, _), s in zip(group, self.predict(*inputs).tolist()):
                out[i] = float(s)
            k += len(group)
        return [float(v) for v in out]  # type: ignore[arg-type]

    def score_files(
        self,
        dist: str | os.PathLike,
        ref: str | os.PathLike | None = None,
        *,
        max_frames: int | None = None,
        yuv_dist: Any = None,
        yuv_ref: Any = None,
        **_: Any,
    ) -> ClipScores:
        """Video models: score a video file with the card's clip sampling.

        ``max_frames`` restricts sampling to the first ``max_frames`` frames. Other
        frame-selection options of ``qualitas score`` (``--frame-step``) do not apply:
        the clip sampling the model was trained with decides.
        """
        if not self.card.video:
            raise UsageError(f"model '{self.card.name}' is an image model; score videos frame by frame")
        self._check_ref(ref is not None)
        if _media_kind(dist) != "video":
            raise MediaError(self._image_refused(dist))
        if ref is not None and _media_kind(ref) != "video":
            raise MediaError(f"{ref}: the reference of a video must be a video")
        from qualitas.data.sampling import ClipSampling
        from qualitas.io.video import probe_video

        clips_card = self.card.clips
        assert clips_card is not None  # ModelCard.from_dict guarantees it for video cards
        info = probe_video(dist, yuv=yuv_dist)
        total = int(info.num_frames or 0)
        if ref is not None:
            rtotal = int(probe_video(ref, yuv=yuv_ref).num_frames or 0)
            total = min(total, rtotal) if total and rtotal else 0
        if total < 1:
            raise MediaError(f"{dist}: frame count unknown; cannot place the model's clips")
        if max_frames is not None:
            total = min(total, int(max_frames))
        sampling = ClipSampling(clips_card.mode, clips_card.num_frames, clips_card.step)
        clips = sampling.eval_clips(total, clips_card.clips)
        fixed_t = self.card.input.num_frames
        if fixed_t is not None and any(len(c) != fixed_t for c in clips):
            raise UsageError(
                f"model '{self.card.name}': clips of {len(clips[0])} frames but the graph takes {fixed_t}"
            )
        wanted = sorted({i for c in clips for i in c})
        if ref is None:
            frames = _decode_prepared(dist, wanted, yuv_dist, lambda f: prepare(self.card, f)[0])
            got = {i: (t,) for i, (t, _) in frames.items()}
            times = {i: tm for i, (_, tm) in frames.items()}
        else:
            raw_ref = _decode_prepared(ref, wanted, yuv_ref, lambda f: f)
            raw_dist = _decode_prepared(dist, wanted, yuv_dist, lambda f: f)
            got, times = {}, {}
            for i in wanted:
                if i in raw_dist and i in raw_ref:
                    got[i] = prepare(self.card, raw_dist[i][0], raw_ref[i][0])
                    times[i] = raw_dist[i][1]
        if not got:
            raise MediaError(f"{dist}: no frames decoded")
        last = max(got)
        # Frames announced but not decodable (short stream) reuse the last decoded one.
        stacked = [
            tuple(torch.stack([got.get(i, got[last])[j] for i in c]) for j in range(len(got[last])))
            for c in clips
        ]
        scores: list[float] = []
        per = max(1, self._batch() // max(1, len(clips[0])))
        for k in range(0, len(stacked), per):
            chunk = stacked[k : k + per]
            inputs = tuple(torch.stack([c[j] for c in chunk]) for j in range(len(chunk[0])))
            scores += [float(s) for s in self.predict(*inputs)]
        entries = [ClipScore(c[0], times.get(c[0]), s) for c, s in zip(clips, scores)]
        return ClipScores(entries, float(sum(scores) / len(scores)), clips)

    # ------------------------------------------------------------------ helpers

    def _batch(self) -> int:
        return self.batch_size

    def _check_ref(self, has_ref: bool) -> None:
        if self.card.full_reference and not has_ref:
            raise UsageError(f"model '{self.card.name}' is full-reference: give a reference (--ref REF)")
        if not self.card.full_reference and has_ref:
            raise UsageError(f"model '{self.card.name}' is no-reference: it takes no reference")

    def _image_refused(self, path: MediaLike) -> str:
        c = self.card.clips
        what = f"clips of {c.num_frames} frames" if c else "video clips"
        return f"{path}: model '{self.card.name}' is a video model ({what}); it cannot score an image"

    def _prepare_item(self, x: torch.Tensor, ref: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        want = 4 if self.card.video else 3
        for t, what in ((x, "input"), (ref, "reference")):
            if t is None:
                continue
            if not isinstance(t, torch.Tensor) or t.ndim != want or t.shape[-3] != self.card.input.channels:
                shape = "(T,3,H,W) clip" if self.card.video else "(3,H,W) image"
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise UsageError(f"model '{self.card.name}' takes a {shape} {what}, got {got}")
        if (
            self.card.video
            and self.card.input.num_frames is not None
            and x.shape[0] != self.card.input.num_frames
        ):
            raise UsageError(
                f"model '{self.card.name}' takes clips of exactly {self.card.input.num_frames} frames, got {x.shape[0]}"
            )
        return prepare(self.card, x.float().cpu(), None if ref is None else ref.float().cpu())

    def _score_video_frames(self, path: MediaLike, ref: MediaLike | None) -> float:
        """Image model on a video: mean of the per-frame scores (every frame)."""
        from qualitas.io.video import iter_batches

        it = iter_batches(path, self._batch())
        rit = iter_batches(ref, self._batch()) if ref is not None else None
        scores: list[float] = []
        for b in it:
            rb = next(rit, None) if rit is not None else None
            if rit is not None and rb is None:
                break
            n = len(b.indices) if rb is None else min(len(b.indices), len(rb.indices))
            scores += self(b.data[:n], None if rb is None else rb.data[:n]).tolist()
        if not scores:
            raise MediaError(f"{path}: no frames decoded")
        return float(sum(scores) / len(scores))


# --------------------------------------------------------------------------- loading


def load_model(
    path: str | os.PathLike, device: str = "cpu", *, batch_size: int | None = None
) -> QualityModel:
    """Load a run dir / ``.ckpt`` (PyTorch) or an export (folder, ``model.json`` or the file)."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"model not found: {p}")
    if p.is_dir():
        if (p / CARD_FILE).is_file():
            return _load_export(p / CARD_FILE, None, device, batch_size)
        if (p / "checkpoints").is_dir() or (p / "config.yaml").is_file():
            return _load_pytorch(p, device, batch_size)
        if (p / "saved_model.pb").is_file() and (p.parent / CARD_FILE).is_file():
            return _load_export(p.parent / CARD_FILE, p, device, batch_size)  # EXPORT/saved_model
        raise UsageError(
            f"{p}: neither an export folder (no {CARD_FILE}) nor a training run (no checkpoints/)"
        )
    suffix = p.suffix.lower()
    if suffix == ".json":
        return _load_export(p, None, device, batch_size)
    if suffix == ".ckpt":
        return _load_pytorch(p, device, batch_size)
    from qualitas.export.formats import format_of_file

    fmt = format_of_file(suffix)
    if fmt is None:
        raise UsageError(
            f"{p}: unknown model file type '{suffix}' (expected a run dir, .ckpt, .onnx, .pt, .pt2, "
            f"an OpenVINO .xml or an export folder)"
        )
    if not (p.parent / CARD_FILE).is_file():
        raise UsageError(
            f"{p}: no {CARD_FILE} beside it (every qualitas export writes one; re-export the model)"
        )
    return _load_export(p.parent / CARD_FILE, p, device, batch_size)


def _load_export(card_path: Path, file: Path | None, device: str, batch_size: int | None) -> QualityModel:
    from qualitas.export.formats import FORMATS, format_of_file

    card = read_card(card_path)
    if not card.format or not card.file:
        raise UsageError(f"{card_path}: the card names no exported file (export.format / export.file)")
    fmt = FORMATS.get(card.format)
    if file is None:
        file = card_path.parent / card.file
    elif file.is_dir() and fmt.name == "saved_model":
        pass
    elif format_of_file(file.suffix) is not fmt:
        raise UsageError(f"{file}: a {file.suffix} file, but {card_path} describes a {card.format} export")
    if not file.exists():  # a file, or a folder for SavedModels
        raise UsageError(f"{file}: the model file named by {card_path} is missing")
    return QualityModel(card, fmt.load(file, card, device), source=str(file), batch_size=batch_size)


def _load_pytorch(path: Path, device: str, batch_size: int | None) -> QualityModel:
    from qualitas.export.pipeline import load_source

    src = load_source(path)
    return QualityModel(src.card, TorchRunner(src.model, device), source=str(path), batch_size=batch_size)


# --------------------------------------------------------------------------- media


def _is_path(x: object) -> bool:
    return isinstance(x, (str, os.PathLike))


def _media_kind(path: MediaLike) -> str:
    from qualitas.io.media import media_kind

    return media_kind(path)  # type: ignore[arg-type]


def _read_image(path: MediaLike) -> torch.Tensor:
    from qualitas.io.image import read_image

    return read_image(path).data  # type: ignore[arg-type]


def _decode_prepared(
    path: str | os.PathLike,
    wanted: list[int],
    yuv: Any,
    fn: Callable[[torch.Tensor], Any],
) -> dict[int, tuple[Any, float]]:
    """Decode the frames at ``wanted`` (sorted) -> ``{index: (fn(frame), time)}``.

    Only wanted frames are converted to RGB (the decoder still decodes every frame up to
    the last one: inter-coded streams need them); ``fn`` shrinks each frame at once
    (model sizing), so memory holds sized frames, not full-resolution ones.
    """
    out: dict[int, tuple[Any, float]] = {}
    want = set(wanted)
    for index, time, convert in _iter_frames_lazy(path, yuv):
        if index in want:
            out[index] = (fn(convert(None)), float(time))
        if index >= wanted[-1]:
            break
    return out


def _iter_frames_lazy(path: str | os.PathLike, yuv: Any) -> Iterator[tuple[int, float, Callable]]:
    # Converts only the frames the clip sampling keeps (conversion costs more than decoding).
    from qualitas.io.video import iter_lazy_frames

    yield from iter_lazy_frames(path, yuv=yuv)


def model_scorers(path: str, device: str = "cpu") -> dict[str, Any]:
    """``--model PATH`` as the scoring engine's scorers: ``{name: model}``.

    The engine takes any object with ``info: MetricInfo``: ``kind="frames"`` scorers are
    called on frame batches like a metric, ``kind="files"`` ones (video models) through
    ``score_files`` (:class:`qualitas.metrics.base.FileMetric`).
    """
    scorer = load_model(path, device=device)
    info = getattr(scorer, "info", None)
    if info is None:
        raise UsageError(f"--model {path}: this model type cannot be used by `qualitas score` yet")
    return {info.name: scorer}

"""Using importance: selective enhancement and ROI encoding.

Selective enhancement: enhance only the chosen macroblocks (dilated by ``margin`` blocks),
paste them into the cheap (bicubic) upscale, and report

* ``cost`` = share of output pixels taken from the enhancer (what the enhancer must run on,
  up to its receptive-field border), and
* ``recovered`` = ``(f(pasted) - f(cheap)) / (f(enhanced) - f(cheap))``: the share of the
  full-enhancement objective gain kept (NaN when enhancement gains nothing).

ROI encoding: block importance -> per-region quantiser offsets (FFmpeg ``addroi`` filter,
read by libx264 as frame side data), encoded at a target bitrate with two passes, against
a plain two-pass encode at the same target.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from qualitas.errors import DependencyError, MediaError, UsageError
from qualitas.files import atomic_write_text, temp_for
from qualitas.functional.blocks import blocks_to_pixels, dilate, paste, select_topk
from qualitas.importance.analytics import reference_objective


@dataclass
class SelectiveResult:
    objective_cheap: float
    objective_full: float
    objective_selective: float
    cost: float
    """Share of pixels enhanced (after dilation)."""

    @property
    def recovered(self) -> float:
        gain = self.objective_full - self.objective_cheap
        if abs(gain) < 1e-12:
            return float("nan")
        return (self.objective_selective - self.objective_cheap) / gain

    def to_dict(self) -> dict:
        return {**asdict(self), "recovered": self.recovered}


def selective_frame(
    cheap: torch.Tensor,
    enhanced: torch.Tensor,
    mask: torch.Tensor,
    *,
    block: int,
    scale: int,
    margin: int = 0,
) -> tuple[torch.Tensor, float]:
    """Paste enhanced blocks ``mask (gh, gw)`` (grown by ``margin``) into ``cheap (3, H, W)``.

    Returns the frame and the share of pixels enhanced.
    """
    m = dilate(mask, margin)
    px = blocks_to_pixels(m, block * scale, cheap.shape[-2], cheap.shape[-1])
    return paste(cheap, enhanced, px), float(px.float().mean())


def selective_enhance(
    objective: Callable[[torch.Tensor], torch.Tensor],
    cheap: torch.Tensor,
    enhanced: torch.Tensor,
    mask: torch.Tensor,
    *,
    block: int,
    scale: int,
    margin: int = 0,
    objective_cheap: float | None = None,
    objective_full: float | None = None,
) -> tuple[torch.Tensor, SelectiveResult]:
    """Selective enhancement of one frame and its :class:`SelectiveResult`.

    ``cheap``/``enhanced``: ``(3, H, W)``; the objective values of the cheap and fully
    enhanced frames can be passed when already known (several masks per frame).
    """
    frame, cost = selective_frame(cheap, enhanced, mask, block=block, scale=scale, margin=margin)
    objective = reference_objective(objective, enhanced[None])
    with torch.no_grad():
        f_c = float(objective(cheap[None])[0]) if objective_cheap is None else objective_cheap
        f_e = float(objective(enhanced[None])[0]) if objective_full is None else objective_full
        f_s = float(objective(frame[None])[0])
    return frame, SelectiveResult(f_c, f_e, f_s, cost)


# --------------------------------------------------------------------------- ROI encoding


def roi_rectangles(
    mask: torch.Tensor, block: int, width: int, height: int
) -> list[tuple[int, int, int, int]]:
    """Selected blocks ``(gh, gw)`` -> few pixel rectangles ``(x, y, w, h)`` covering them
    exactly: runs of blocks per row, merged with identical runs of the rows below."""
    runs: dict[tuple[int, int], list[int]] = {}
    rows = mask.bool().tolist()
    for i, row in enumerate(rows):
        j = 0
        while j < len(row):
            if row[j]:
                k = j
                while k < len(row) and row[k]:
                    k += 1
                runs.setdefault((j, k), []).append(i)
                j = k
            else:
                j += 1
    rects = []
    for (j, k), ids in sorted(runs.items()):
        start = prev = ids[0]
        for i in ids[1:] + [None]:  # type: ignore[list-item]
            if i is not None and i == prev + 1:
                prev = i
                continue
            x, y = j * block, start * block
            rects.append((x, y, min(k * block, width) - x, min((prev + 1) * block, height) - y))
            if i is not None:
                start = prev = i
    return rects


def addroi_filter(rects: Sequence[tuple[int, int, int, int]], qoffset: float) -> str:
    """An FFmpeg filter chain adding one ROI per rectangle (``qoffset`` in ``[-1, 1]``;
    negative = better quality)."""
    if not -1.0 <= qoffset <= 1.0:
        raise UsageError(f"ROI qoffset must be in [-1, 1], got {qoffset}")
    parts = [f"addroi=x={x}:y={y}:w={w}:h={h}:qoffset={qoffset:g}" for x, y, w, h in rects]
    return ",".join(parts) or "null"


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise DependencyError("ROI encoding needs imageio-ffmpeg (pip install imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def encode_x264(
    frames: torch.Tensor,
    out: str | Path,
    *,
    fps: float = 25.0,
    bitrate_kbps: float,
    vf: str = "null",
    preset: str = "medium",
) -> Path:
    """Two-pass libx264 encode of ``frames (T, 3, H, W)`` in ``[0, 1]`` (even H, W) at
    ``bitrate_kbps``, with the filter chain ``vf`` (e.g. :func:`addroi_filter`)."""
    t, _, h, w = frames.shape
    if h % 2 or w % 2:
        raise UsageError(f"x264 yuv420p needs even frame sizes, got {w}x{h}")
    raw = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).contiguous().numpy().tobytes()
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        log = str(Path(tmp) / "x264pass")
        base = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
        base += [
            "-s",
            f"{w}x{h}",
            "-r",
            f"{fps:g}",
            "-i",
            "-",
            "-vf",
            vf,
            "-c:v",
            "libx264",
            "-preset",
            preset,
        ]
        base += ["-b:v", f"{bitrate_kbps:g}k", "-pix_fmt", "yuv420p", "-passlogfile", log]
        for cmd in (base + ["-pass", "1", "-f", "null", "-"], base + ["-pass", "2", str(out)]):
            res = subprocess.run(cmd, input=raw, capture_output=True, check=False)
            if res.returncode != 0:
                msg = res.stderr.decode(errors="replace").strip().splitlines()
                raise MediaError(f"ffmpeg failed: {msg[-1] if msg else res.returncode}")
    return out


def decode_frames(path: str | Path) -> torch.Tensor:
    """All frames of a (small) video ``(T, 3, H, W)``."""
    from qualitas.io.video import iter_frames

    return torch.stack([f.data for f in iter_frames(path)])


@dataclass
class EncodeResult:
    path: str
    kbps: float
    objective: float
    """Mean analytics objective over the decoded frames."""


def bitrate_kbps(path: Path, num_frames: int, fps: float) -> float:
    return path.stat().st_size * 8 / 1000 / (num_frames / fps)


def roi_encode_compare(
    frames: torch.Tensor,
    grid: torch.Tensor,
    out_dir: str | Path,
    objective: Callable[[torch.Tensor], torch.Tensor],
    *,
    block: int,
    bitrate_kbps_target: float,
    fraction: float = 0.2,
    qoffset: float = -0.5,
    margin: int = 0,
    fps: float = 25.0,
    preset: str = "medium",
) -> dict:
    """ROI encode (important blocks get ``qoffset``) vs plain encode at the same target.

    ``grid``: ``(gh, gw)`` importance on ``frames``' block grid (e.g. averaged over the
    clip: ``addroi`` regions are static). Writes ``roi.mp4``, ``plain.mp4`` and
    ``encode.json`` under ``out_dir``; returns the comparison.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t, _, h, w = frames.shape
    mask = dilate(select_topk(grid, fraction), margin)
    rects = roi_rectangles(mask, block, w, h)
    results = {}
    for name, vf in (("plain", "null"), ("roi", addroi_filter(rects, qoffset))):
        path = encode_x264(
            frames, out / f"{name}.mp4", fps=fps, bitrate_kbps=bitrate_kbps_target, vf=vf, preset=preset
        )
        dec = decode_frames(path)
        with torch.no_grad():
            # Reference-conditioned objectives take their boxes from the source frame.
            objs = [
                reference_objective(objective, frames[i : i + 1])(dec[i : i + 1]) for i in range(len(dec))
            ]
            obj = float(torch.cat(objs).mean())
        results[name] = asdict(EncodeResult(str(path), bitrate_kbps(path, t, fps), obj))
    report = {
        "target_kbps": bitrate_kbps_target,
        "fraction": fraction,
        "qoffset": qoffset,
        "regions": len(rects),
        "roi_share": float(mask.float().mean()),
        **results,
        "objective_gain": results["roi"]["objective"] - results["plain"]["objective"],
    }
    atomic_write_text(out / "encode.json", json.dumps(report, indent=1))
    return report


def mean_grid(grids: Sequence[torch.Tensor]) -> torch.Tensor:
    """Average of per-frame (max-normalised) grids of one shape; static ROI for a clip."""
    if not grids:
        raise UsageError("no importance grids")
    shapes = {tuple(g.shape) for g in grids}
    if len(shapes) > 1:
        raise UsageError(f"frames of one clip must share a grid shape, got {sorted(shapes)[:2]}")
    return torch.stack([g.float() for g in grids]).mean(0)


def finite_mean(values: Sequence[float]) -> float:
    v = [x for x in values if math.isfinite(x)]
    return sum(v) / len(v) if v else float("nan")


def predict_grids(run: str | Path, frames: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Predicted ranking grids ``(gh, gw)`` of low-res frames ``(3, h, w)`` from a trained run."""
    from qualitas.evaluation.importance import grid_scores
    from qualitas.models.checkpoint import load_run

    model, _ = load_run(run)
    with torch.no_grad():
        return [grid_scores(model(x[None]))[0] for x in frames]


def _save_frame(frame: torch.Tensor, path: Path) -> None:
    """``(3, H, W)`` in ``[0, 1]`` -> an 8-bit image file, written atomically."""
    from PIL import Image

    arr = (frame.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    tmp = temp_for(path, suffix=path.suffix)
    try:
        Image.fromarray(arr).save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _encode_clip(
    frames: Sequence[torch.Tensor],
    grids: Sequence[torch.Tensor],
    out: Path,
    decoded_objective: Callable[[torch.Tensor], torch.Tensor],
    *,
    block: int,
    bitrate: float,
    fraction: float,
    qoffset: float,
    margin: int,
    fps: float,
) -> dict:
    """The low-res frames ``(3, h, w)`` as one clip (even size), ROI-encoded with the mean of
    their max-normalised grids vs a plain encode (:func:`roi_encode_compare`)."""
    norm = [g / g.max().clamp_min(1e-12) for g in grids]
    clip = torch.stack(list(frames))
    h, w = clip.shape[-2] // 2 * 2, clip.shape[-1] // 2 * 2
    return roi_encode_compare(
        clip[..., :h, :w],
        mean_grid(norm),
        out,
        decoded_objective,
        block=block,
        bitrate_kbps_target=bitrate,
        fraction=fraction,
        qoffset=qoffset,
        margin=margin,
        fps=fps,
    )


def apply_labels(
    labels_dir: str | Path,
    out: str | Path,
    *,
    select: str = "top:20%",
    margin: int = 0,
    predictor: str | Path | None = None,
    analytics: str | None = None,
    enhancer: str | None = None,
    save_frames: bool = False,
    encode: bool = False,
    bitrate: float = 300.0,
    qoffset: float = -0.5,
    fps: float = 25.0,
) -> dict:
    """``qualitas importance apply``: selectively enhance the frames of a label folder where
    their grids (ground truth, or ``predictor``'s) rank highest and measure the cost and the
    recovered gain; with ``encode`` also compare a ROI encode with a plain one.

    Writes ``out/report.json`` (and ``out/frames/``, ``out/encode/``) atomically and returns
    the report (``cost``, ``recovered``, per-frame rows, ``encode``).
    """
    from qualitas.data.manifest import resolve_under
    from qualitas.functional.blocks import parse_select
    from qualitas.importance.analytics import build_analytics
    from qualitas.importance.enhancers import build_enhancer
    from qualitas.importance.label import LabelSet
    from qualitas.io.image import read_image

    fraction = parse_select(select)
    labels = LabelSet.load(labels_dir)
    objective = build_analytics(analytics or labels.meta.get("analytics", "mtcnn"))
    enhance = build_enhancer(enhancer or labels.meta.get("enhancer", "unsharp"), scale=labels.scale)
    cheap_up = build_enhancer("bicubic", scale=labels.scale)
    frames = [read_image(resolve_under(labels_dir, rel)).data for rel in labels.frames]
    grids = predict_grids(predictor, frames) if predictor else [torch.from_numpy(r) for r in labels.raw]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (rel, x, g) in enumerate(zip(labels.frames, frames, grids)):
        with torch.no_grad():
            cheap, enh = cheap_up(x[None])[0], enhance(x[None])[0]
        frame, res = selective_enhance(
            objective,
            cheap,
            enh,
            select_topk(g, fraction),
            block=labels.block,
            scale=labels.scale,
            margin=margin,
            objective_cheap=labels.objective_cheap[i] if labels.objective_cheap else None,
        )
        rows.append({"frame": rel, **res.to_dict()})
        if save_frames:
            (out / "frames").mkdir(exist_ok=True)
            _save_frame(frame, out / "frames" / Path(rel).name)
    report: dict = {
        "select": select,
        "margin": margin,
        "grids": "predicted" if predictor else "ground truth",
        "cost": finite_mean([r["cost"] for r in rows]),
        "recovered": finite_mean([r["recovered"] for r in rows]),
        "frames": rows,
    }
    if encode:
        report["encode"] = _encode_clip(
            frames,
            grids,
            out / "encode",
            lambda x: objective(cheap_up(x)),
            block=labels.block,
            bitrate=bitrate,
            fraction=fraction,
            qoffset=qoffset,
            margin=margin,
            fps=fps,
        )
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    return report

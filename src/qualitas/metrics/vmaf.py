"""VMAF through the real Netflix libvmaf, driven as an ffmpeg subprocess.

This is not a re-implementation: it runs ffmpeg's ``libvmaf`` filter (the static ffmpeg in
the ``imageio-ffmpeg`` wheel is built with libvmaf and its built-in models) with an argument
list (never a shell), reads libvmaf's JSON log, and returns per-frame and pooled scores.

The ffmpeg used is ``$QUALITAS_FFMPEG`` when set, else ``imageio_ffmpeg.get_ffmpeg_exe()``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from qualitas.errors import ConfigError, DependencyError, MediaError, UsageError, one_line
from qualitas.io.media import media_kind
from qualitas.io.video import probe_video
from qualitas.io.yuv import RawYUVSpec
from qualitas.metrics.base import METRICS, Metric, MetricInfo

if TYPE_CHECKING:  # annotations only
    import torch

BUILTIN_MODELS = ("vmaf_v0.6.1", "vmaf_v0.6.1neg", "vmaf_4k_v0.6.1")
FFMPEG_ENV = "QUALITAS_FFMPEG"
_HOW_TO_GET = (
    "pip install imageio-ffmpeg (its static ffmpeg has libvmaf) "
    f"or set {FFMPEG_ENV} to an ffmpeg built with --enable-libvmaf"
)


class VmafFrame(NamedTuple):
    """Score of one frame: ``index`` in the distorted stream, ``time`` in seconds."""

    index: int
    time: float
    score: float


@dataclass(frozen=True)
class VmafResult:
    """libvmaf's output for one pair of files."""

    frames: list[VmafFrame]
    pooled: dict[str, float]
    """libvmaf's pooled scores over the scored frames: mean, harmonic_mean, min, max."""
    model: str
    width: int
    height: int
    """Size VMAF was computed at (the reference's)."""
    scaled: bool = False
    """True when the distorted video was scaled (bicubic) to the reference size."""
    libvmaf_version: str = ""
    command: list[str] = field(default_factory=list, repr=False)
    """The ffmpeg argument list that produced it (log path included)."""


def ffmpeg_path() -> str:
    """The ffmpeg executable: ``$QUALITAS_FFMPEG`` or imageio-ffmpeg's static binary."""
    env = os.environ.get(FFMPEG_ENV)
    if env:
        return env
    try:
        import imageio_ffmpeg
    except ImportError:
        raise DependencyError(f"vmaf needs an ffmpeg with libvmaf: {_HOW_TO_GET}") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=8)
def _has_libvmaf(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(r"^\s*\S*\s+libvmaf\s", out.stdout, flags=re.MULTILINE) is not None


def find_ffmpeg_with_libvmaf() -> str:
    """Path of an ffmpeg whose filter list has libvmaf (checked once per path), else DependencyError."""
    exe = ffmpeg_path()
    resolved = shutil.which(exe) or exe
    if not Path(resolved).is_file():
        raise DependencyError(f"ffmpeg not found at '{exe}'; {_HOW_TO_GET}")
    if not _has_libvmaf(resolved):
        raise DependencyError(f"the ffmpeg at '{resolved}' has no libvmaf filter; {_HOW_TO_GET}")
    return resolved


def _probe(path: str, yuv: RawYUVSpec | None) -> tuple[int, int, float]:
    """(width, height, fps) as displayed (rotation applied, as ffmpeg's autorotate does).

    Images are single-frame inputs to ffmpeg, which ignores EXIF orientation: their stored
    size is returned, with a nominal 25 fps.
    """
    if yuv is None and media_kind(path) == "image":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                return int(im.width), int(im.height), 25.0
        except (OSError, UnidentifiedImageError) as err:
            raise MediaError(f"{path}: cannot read image ({one_line(err)})") from None
    info = probe_video(path, yuv)
    return int(info.width), int(info.height), float(info.fps)


def _input_args(path: str, yuv: RawYUVSpec | None) -> list[str]:
    if yuv is None:
        return ["-i", path]
    fps = yuv.fps_fraction
    return ["-f", "rawvideo", "-pix_fmt", yuv.pix_fmt, "-s", f"{yuv.width}x{yuv.height}",
            "-r", f"{fps.numerator}/{fps.denominator}", "-i", path]  # fmt: skip


def _model_option(model: str, workdir: Path) -> str:
    """libvmaf ``model=`` value: a built-in version, or a copied .json model file."""
    if model in BUILTIN_MODELS:
        return f"version={model}"
    if model.endswith(".json") and Path(model).is_file():
        # Copied into ffmpeg's working folder under a plain relative name, so no user path
        # ever needs filtergraph escaping.
        shutil.copyfile(model, workdir / "model.json")
        return "path=model.json"
    raise ConfigError(
        f"unknown vmaf model '{model}'; built-in: {', '.join(BUILTIN_MODELS)} (or a .json model file)"
    )


_NOISE = re.compile(
    r"^(Conversion failed|Exiting with exit code|Error while filtering|Terminating thread)", re.I
)


def _last_meaningful_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not _NOISE.match(ln)]
    return (useful or lines or ["ffmpeg failed without a message"])[-1]


def build_command(
    exe: str,
    dist: str,
    ref: str,
    log_path: str,
    *,
    model_option: str,
    threads: int,
    frame_step: int,
    max_frames: int | None,
    scale_to: tuple[int, int] | None,
    yuv_dist: RawYUVSpec | None = None,
    yuv_ref: RawYUVSpec | None = None,
) -> list[str]:
    """The ffmpeg argument list: distorted is input 0 (libvmaf's "main"), reference input 1."""
    trim = f"trim=end_frame={max_frames}," if max_frames is not None else ""
    # Timestamps restart at 0 on both sides so framesync pairs frame n with frame n.
    sync = "settb=AVTB,setpts=PTS-STARTPTS"
    scale = f",scale={scale_to[0]}:{scale_to[1]}:flags=bicubic" if scale_to is not None else ""
    vmaf = (
        f"libvmaf=model={model_option}:log_fmt=json:log_path={log_path}"
        f":n_threads={threads}:n_subsample={frame_step}:shortest=1"
    )
    graph = f"[0:v]{trim}{sync}{scale}[dist];[1:v]{trim}{sync}[ref];[dist][ref]{vmaf}"
    return [
        exe, "-hide_banner", "-nostdin", "-loglevel", "error",
        *_input_args(dist, yuv_dist), *_input_args(ref, yuv_ref),
        "-lavfi", graph, "-f", "null", "-",
    ]  # fmt: skip


def parse_log(log: dict, fps: float, frame_step: int = 1) -> tuple[list[VmafFrame], dict[str, float]]:
    """Per-frame (index, time, score) and pooled scores from a libvmaf JSON log."""
    frames = []
    for i, entry in enumerate(log.get("frames", [])):
        if "vmaf" not in entry.get("metrics", {}):
            continue
        index = int(entry.get("frameNum", i * frame_step))
        time = index / fps if fps > 0 else float("nan")
        frames.append(VmafFrame(index, time, float(entry["metrics"]["vmaf"])))
    pooled_log = log.get("pooled_metrics", {}).get("vmaf", {})
    scores = [f.score for f in frames]
    pooled = {k: float(pooled_log[k]) for k in ("mean", "harmonic_mean", "min", "max") if k in pooled_log}
    if scores and len(pooled) < 4:  # older libvmaf logs: pool as libvmaf does
        pooled = {
            "mean": sum(scores) / len(scores),
            "harmonic_mean": len(scores) / sum(1.0 / (1.0 + s) for s in scores) - 1.0,
            "min": min(scores),
            "max": max(scores),
        }
    return frames, pooled


def score_files(
    dist: str | os.PathLike,
    ref: str | os.PathLike,
    *,
    model: str = "vmaf_v0.6.1",
    threads: int = 0,
    frame_step: int = 1,
    max_frames: int | None = None,
    yuv_dist: RawYUVSpec | None = None,
    yuv_ref: RawYUVSpec | None = None,
    scale_to_ref: bool = True,
    timeout: float | None = None,
) -> VmafResult:
    """VMAF of the distorted video file ``dist`` against ``ref``, computed by libvmaf.

    ``threads=0`` uses every CPU core. ``frame_step`` scores every n-th frame (libvmaf
    ``n_subsample``); ``max_frames`` limits both inputs to their first frames. A distorted
    video of another size is scaled to the reference size (bicubic) when ``scale_to_ref``,
    else a MediaError. Raw ``.yuv`` inputs need ``yuv_dist``/``yuv_ref`` specs.
    """
    if frame_step < 1:
        raise UsageError(f"frame_step must be >= 1, got {frame_step}")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"max_frames must be >= 1, got {max_frames}")
    if threads < 0:
        raise UsageError(f"threads must be >= 0, got {threads}")
    # Absolute paths: ffmpeg runs in a temporary folder (see below).
    dist, ref = os.path.abspath(os.fspath(dist)), os.path.abspath(os.fspath(ref))
    for p in (dist, ref):
        if not Path(p).is_file():
            raise MediaError(f"{p}: no such file")
    exe = find_ffmpeg_with_libvmaf()
    (dw, dh, dist_fps), (rw, rh, _) = _probe(dist, yuv_dist), _probe(ref, yuv_ref)
    scale_to = None
    if (dw, dh) != (rw, rh):
        if not scale_to_ref:
            raise MediaError(f"sizes differ: distorted {dw}x{dh}, reference {rw}x{rh}")
        scale_to = (rw, rh)
    n_threads = threads or (os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="qualitas-vmaf-") as tmp:
        workdir = Path(tmp)
        # ffmpeg runs inside the temporary folder and writes its log there by a relative name,
        # which needs no escaping inside the filtergraph whatever $TMPDIR is.
        log_name = "vmaf.json"
        cmd = build_command(
            exe, dist, ref, log_name,
            model_option=_model_option(model, workdir), threads=n_threads, frame_step=frame_step,
            max_frames=max_frames, scale_to=scale_to, yuv_dist=yuv_dist, yuv_ref=yuv_ref,
        )  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)
        except subprocess.TimeoutExpired:
            raise MediaError(f"vmaf timed out after {timeout} s on {dist}") from None
        if proc.returncode != 0:
            raise MediaError(f"ffmpeg libvmaf failed on {dist}: {_last_meaningful_line(proc.stderr)}")
        log_path = workdir / log_name
        if not log_path.is_file():
            raise MediaError(f"ffmpeg libvmaf wrote no log for {dist}: {_last_meaningful_line(proc.stderr)}")
        log = json.loads(log_path.read_text())
    frames, pooled = parse_log(log, dist_fps, frame_step)
    if not frames:
        raise MediaError(f"libvmaf scored no frames for {dist} (empty or undecodable video?)")
    return VmafResult(
        frames=frames,
        pooled=pooled,
        model=model,
        width=rw,
        height=rh,
        scaled=scale_to is not None,
        libvmaf_version=str(log.get("version", "")),
        command=cmd,
    )


@METRICS.register("vmaf")
class VMAF(Metric):
    """VMAF runs on whole files; the scoring runtime calls :func:`score_files`."""

    info = MetricInfo(
        name="vmaf",
        full_reference=True,
        higher_is_better=True,
        range=(0.0, 100.0),
        input="video files (or raw .yuv), scored by libvmaf through ffmpeg; distorted scaled to the reference size",
        kind="files",
        reference="Netflix libvmaf (ffmpeg libvmaf filter), model vmaf_v0.6.1 by default; equal to ffmpeg's own run",
    )

    def __init__(
        self, device: str | torch.device = "cpu", *, model: str = "vmaf_v0.6.1", threads: int = 0
    ) -> None:
        super().__init__(device)
        self.model = model
        self.threads = threads

    def score_files(
        self,
        dist: str | os.PathLike,
        ref: str | os.PathLike,
        *,
        frame_step: int = 1,
        max_frames: int | None = None,
        yuv_dist: RawYUVSpec | None = None,
        yuv_ref: RawYUVSpec | None = None,
        **kwargs,
    ) -> VmafResult:
        """:func:`score_files` with this instance's model and threads, as a
        :class:`~qualitas.metrics.base.FileMetric`: ``max_frames`` counts *selected* frames
        (every ``frame_step``-th), as the frame readers of ``qualitas score`` do, where
        :func:`score_files` trims both files to their first ``max_frames`` *decoded* frames
        before subsampling; the first ``(max_frames - 1) * frame_step + 1`` decoded frames
        hold exactly ``max_frames`` selected ones."""
        kwargs.setdefault("model", self.model)
        kwargs.setdefault("threads", self.threads)
        decoded = None if max_frames is None else (max_frames - 1) * frame_step + 1
        return score_files(
            dist, ref, frame_step=frame_step, max_frames=decoded, yuv_dist=yuv_dist, yuv_ref=yuv_ref, **kwargs
        )

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        raise UsageError("vmaf is computed on whole files by libvmaf: call score_files(dist_path, ref_path)")

"""Orchestration of ``qualitas data synth``: plan, run in parallel, resume, write manifests.

Why this file is long: planning, fingerprinted resume, parallel execution and manifest
assembly of one command, each relying on the task records the others write.

Work is cut into tasks (prepare a pristine image/clip; distort one image with one type at
all levels; distort one clip with one type at one level). Every finished task leaves its
outputs (written atomically) and a fragment ``.parts/<task>.json`` holding its manifest
records and a fingerprint of everything that determines them (seed, parameters, teacher).
A rerun skips tasks whose fragment has the same fingerprint and whose outputs exist, so
an interrupted run resumes and a finished run does no work. The manifests are rebuilt
from the fragments at the end (atomically):

- ``images.jsonl``: pristine + distorted images (``path``, ``ref``, ``mos`` = teacher score
  0-100, ``group`` = source content, ``dist_type``, ``dist_level``, raw teacher values);
- ``image_pairs.jsonl``: ranking pairs (``better``, ``worse``) of the same content and type
  (the pristine image beats every level; a lower level beats a higher one);
- ``videos.jsonl`` / ``video_pairs.jsonl``: the same for video (teacher: VMAF);
- ``synth.json``: the resolved configuration and counts.

Paths in the manifests are relative to the output folder (use it as the root).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from qualitas.data.manifest import write_manifest
from qualitas.data.synth import distortions as D
from qualitas.data.synth import video as V
from qualitas.data.synth.teacher import ImageTeacher, ImageTeacherConfig, VideoTeacherConfig, vmaf_label
from qualitas.errors import QualitasError, UsageError, one_line
from qualitas.files import atomic_write_text

FORMAT_VERSION = 2
"""Bumped when outputs change for the same parameters (invalidates old fragments)."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides what ``synth`` produces (typed; no config dicts)."""

    out: Path
    images: Path | None = None
    videos: Path | None = None
    levels: int = 5
    types: tuple[str, ...] | None = None
    """Image distortion types (None: all registered)."""
    codecs: tuple[str, ...] | None = None
    """Video codecs for CRF ladders (None: every ladder codec PyAV can encode)."""
    resolution_ladder: bool = True
    fps_drop: bool = False
    seed: int = 0
    jobs: int = 1
    max_images: int | None = None
    max_videos: int | None = None
    clip_seconds: float | None = 4.0
    photo_videos: int = 0
    image_max_side: int = 0
    """Downscale pristine images so the longer side is at most this (0: keep)."""
    video_max_side: int = 0
    teacher: ImageTeacherConfig | None = field(default_factory=ImageTeacherConfig)
    """Image teacher (None: no labels, distortions only)."""
    video_teacher: VideoTeacherConfig | None = field(default_factory=VideoTeacherConfig)
    progress: bool = True


@dataclass
class SynthResult:
    manifests: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    tasks_run: int = 0
    tasks_skipped: int = 0
    failures: list[str] = field(default_factory=list)
    image_items: int = 0
    """Distorted images made in this run (skipped tasks excluded)."""
    image_seconds: float = 0.0
    """Wall time of the image distortion phase."""
    video_items: int = 0
    video_content_seconds: float = 0.0
    """Seconds of distorted video made in this run (clip duration x versions)."""
    video_seconds: float = 0.0
    """Wall time of the video phases."""


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Task:
    kind: str
    """prep_image | prep_video | prep_photo | image | video"""
    content: str
    source: str = ""
    """Absolute source path (prep tasks) or the pristine's path relative to out."""
    dtype: str = ""
    levels: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        lv = "-".join(str(v) for v in self.levels)
        return "__".join(p for p in (self.kind, self.content, self.dtype, lv) if p)


def content_ids(paths: list[Path], base: Path) -> dict[str, Path]:
    """Stable content ids from relative paths: folders joined by '__', odd characters -> '_'."""
    out: dict[str, Path] = {}
    for p in paths:
        rel = p.relative_to(base).with_suffix("").as_posix()
        cid = re.sub(r"[^A-Za-z0-9_.-]", "_", rel.replace("/", "__"))
        if cid in out:
            cid = f"{cid}_{p.suffix.lstrip('.').lower()}"
        out[cid] = p
    return out


def _list_media(folder: Path | None, kind: str, limit: int | None) -> list[Path]:
    from qualitas.io.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    if folder is None:
        return []
    if not folder.is_dir():
        raise UsageError(f"--{kind}s: not a folder: {folder}")
    exts = IMAGE_EXTENSIONS if kind == "image" else VIDEO_EXTENSIONS - {".yuv"}
    found = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
    )
    return found[:limit] if limit else found


def plan(cfg: SynthConfig) -> tuple[list[Task], list[Task], list[Task], list[Task]]:
    """Return (image prep, image distort, video prep, video distort) tasks."""
    types = list(cfg.types) if cfg.types else D.DISTORTIONS.names()
    for t in types:
        D.DISTORTIONS.get(t)  # ConfigError with did-you-mean for a typo
    levels = tuple(D.select_levels(cfg.levels))
    images = content_ids(_list_media(cfg.images, "image", cfg.max_images), cfg.images) if cfg.images else {}
    img_prep = [Task("prep_image", c, str(p.resolve())) for c, p in images.items()]
    img_tasks = [Task("image", c, f"images/ref/{c}.png", t, levels) for c in images for t in types]

    vid_prep: list[Task] = []
    if cfg.videos is not None:
        vids = content_ids(_list_media(cfg.videos, "video", cfg.max_videos), cfg.videos)
        vid_prep += [Task("prep_video", c, str(p.resolve())) for c, p in vids.items()]
    if cfg.photo_videos:
        if cfg.images is None:
            raise UsageError("--photo-videos needs --images")
        photos = content_ids(_list_media(cfg.images, "image", None), cfg.images)
        # A seeded choice of photos, so the same seed picks the same ones.
        names = sorted(photos)
        pick = D.item_rng(cfg.seed, "photo-videos").permutation(len(names))[: cfg.photo_videos]
        vid_prep += [
            Task("prep_photo", f"photo-{names[i]}", str(photos[names[i]].resolve())) for i in sorted(pick)
        ]
    vtypes = (
        V.video_types(
            list(cfg.codecs) if cfg.codecs else V.available_codecs(),
            resolution_ladder=cfg.resolution_ladder,
            fps_drop=cfg.fps_drop,
        )
        if vid_prep
        else []
    )
    vid_tasks = [
        Task("video", t.content, f"videos/ref/{t.content}.mkv", vt, (lv,))
        for t in vid_prep
        for vt in vtypes
        for lv in levels
    ]
    return img_prep, img_tasks, vid_prep, vid_tasks


def fingerprint(task: Task, cfg: SynthConfig) -> str:
    """Hash of everything that determines a task's outputs and records."""
    task_part = asdict(task)
    if task.kind.startswith("prep"):
        task_part.pop("source")  # where a source lives does not change what it makes
    parts: dict = {"v": FORMAT_VERSION, "task": task_part, "seed": cfg.seed}
    if task.kind in ("prep_image", "image"):
        parts["max_side"] = cfg.image_max_side
        parts["teacher"] = cfg.teacher.spec() if cfg.teacher else None
    else:
        parts.update(max_side=cfg.video_max_side, clip=cfg.clip_seconds)
        parts["teacher"] = asdict(cfg.video_teacher) if cfg.video_teacher else None
    if task.kind == "image":
        parts["params"] = D.DISTORTIONS.get(task.dtype).params
    if task.kind == "video":
        parts["step"] = asdict(V.video_step(task.dtype, task.levels[0]))
    if task.kind == "prep_photo":
        parts["photo"] = (25, 640)
    # Prep tasks depend on the source file; distortions on the pristine that prep wrote.
    # By content, not mtime: a re-copied or touched media folder resumes instead of rerunning.
    parts["source"] = _digest(task.source if task.kind.startswith("prep") else cfg.out / task.source)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _digest(path: str | Path) -> str | None:
    """sha256 of a file's bytes (None when unreadable), memoised by path, size and mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return None
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


# ----------------------------------------------------------------------------- task bodies

_TEACHERS: dict[str, ImageTeacher] = {}


def _image_teacher(config: ImageTeacherConfig) -> ImageTeacher:
    key = config.spec()
    if key not in _TEACHERS:
        _TEACHERS[key] = ImageTeacher(config)
    return _TEACHERS[key]


def _load_rgb(path: Path) -> np.ndarray:
    from qualitas.io.image import read_image

    data = read_image(path).data
    return np.clip(np.rint(data.permute(1, 2, 0).numpy().astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def _to_tensor(arrays: list[np.ndarray]):
    import torch

    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


def _save_png(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # compress_level fixed: identical pixels -> identical bytes across runs.
    Image.fromarray(img, "RGB").save(tmp, format="PNG", compress_level=6)
    os.replace(tmp, path)


def _resize_max(img: np.ndarray, max_side: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return img
    f = max_side / max(h, w)
    im = Image.fromarray(img, "RGB").resize(
        (max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.LANCZOS
    )
    return np.asarray(im, dtype=np.uint8).copy()


def _teacher_fields(score, raw: dict, i: int) -> dict:
    return {"mos": round(float(score[i]), 4), "teacher": {k: round(float(v[i]), 6) for k, v in raw.items()}}


def run_task(task: Task, cfg: SynthConfig) -> tuple[list[dict], list[str], float]:
    """Do one task: write its outputs, return (records, output paths, seconds of video made)."""
    out = cfg.out
    if task.kind == "prep_image":
        img = _resize_max(_load_rgb(Path(task.source)), cfg.image_max_side)
        rel = f"images/ref/{task.content}.png"
        _save_png(img, out / rel)
        rec = {"path": rel, "ref": rel, "group": task.content, "dist_type": "pristine", "dist_level": 0,
               "source": Path(task.source).name}  # fmt: skip
        if cfg.teacher is not None:
            t = _to_tensor([img])
            score, raw = _image_teacher(cfg.teacher)(t, t[0])
            rec.update(_teacher_fields(score, raw, 0))
        return [rec], [rel], 0.0
    if task.kind == "image":
        ref = _load_rgb(out / task.source)
        dist = D.DISTORTIONS.get(task.dtype)
        outs, imgs = [], []
        for lv in task.levels:
            img = dist(ref, lv, D.item_rng(cfg.seed, task.content, task.dtype, lv))
            rel = f"images/{task.dtype}/{lv}/{task.content}.png"
            _save_png(img, out / rel)
            outs.append(rel)
            imgs.append(img)
        recs = [
            {
                "path": rel,
                "ref": task.source,
                "group": task.content,
                "dist_type": task.dtype,
                "dist_level": lv,
                "dist_param": dist.params[lv - 1],
            }  # fmt: skip
            for rel, lv in zip(outs, task.levels)
        ]
        if cfg.teacher is not None:
            score, raw = _image_teacher(cfg.teacher)(_to_tensor(imgs), _to_tensor([ref])[0])
            for i, rec in enumerate(recs):
                rec.update(_teacher_fields(score, raw, i))
        return recs, outs, 0.0
    if task.kind in ("prep_video", "prep_photo"):
        rel = f"videos/ref/{task.content}.mkv"
        rec: dict = {"path": rel, "ref": rel, "group": task.content, "dist_type": "pristine", "dist_level": 0,
                     "source": Path(task.source).name}  # fmt: skip
        if task.kind == "prep_video":
            frames = V.make_pristine_clip(
                Path(task.source), out / rel, seconds=cfg.clip_seconds, max_side=cfg.video_max_side
            )
            rate = V.video_rate(out / rel)
        else:
            photo = _load_rgb(Path(task.source))
            seconds = cfg.clip_seconds or 4.0
            frames, motion = V.photo_video(
                photo, out / rel, seconds=seconds, fps=25, max_side=cfg.video_max_side or 640,
                rng=D.item_rng(cfg.seed, task.content, "motion"),
            )  # fmt: skip
            rate = 25
            rec["motion"] = motion
        rec.update(frames=frames, fps=float(rate))
        if cfg.video_teacher is not None:
            rec["mos"], rec["vmaf"] = vmaf_label(out / rel, out / rel, cfg.video_teacher)
        return [rec], [rel], 0.0
    if task.kind == "video":
        lv = task.levels[0]
        step = V.video_step(task.dtype, lv)
        rel = f"videos/{task.dtype}/{lv}/{task.content}.mkv"
        frames = V.distort_video(out / task.source, out / rel, step)
        rate = V.video_rate(out / task.source)
        rec = {"path": rel, "ref": task.source, "group": task.content, "dist_type": task.dtype, "dist_level": lv,
               "codec": step.codec, "crf": step.crf, "scale": step.scale, "fps_div": step.fps_div, "frames": frames}  # fmt: skip
        if cfg.video_teacher is not None:
            rec["mos"], rec["vmaf"] = vmaf_label(out / rel, out / task.source, cfg.video_teacher)
        return [rec], [rel], frames / float(rate)
    raise ValueError(f"unknown task kind {task.kind}")


def _part_path(cfg: SynthConfig, task: Task) -> Path:
    return cfg.out / ".parts" / f"{task.key}.json"


def _is_done(cfg: SynthConfig, task: Task, fp: str) -> dict | None:
    p = _part_path(cfg, task)
    try:
        part = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if part.get("fingerprint") != fp or not all((cfg.out / o).is_file() for o in part.get("outputs", [])):
        return None
    return part


def _execute(task: Task, cfg: SynthConfig, fp: str) -> tuple[dict | None, str | None, float]:
    """Run a task and save its fragment; (fragment, error, video seconds)."""
    try:
        recs, outs, vsec = run_task(task, cfg)
    except QualitasError as err:
        return None, f"{task.key}: {one_line(err)}", 0.0
    part = {"fingerprint": fp, "task": asdict(task), "records": recs, "outputs": outs}
    atomic_write_text(_part_path(cfg, task), json.dumps(part))
    return part, None, vsec


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core: no oversubscription


def _run_phase(
    tasks: list[Task], cfg: SynthConfig, desc: str, result: SynthResult
) -> tuple[list[dict], float]:
    """Run tasks (skipping finished ones); returns (fragments, seconds of video made)."""
    from tqdm import tqdm

    parts: dict[str, dict] = {}
    todo: list[tuple[Task, str]] = []
    for t in tasks:
        fp = fingerprint(t, cfg)
        done = _is_done(cfg, t, fp)
        if done is not None:
            parts[t.key] = done
            result.tasks_skipped += 1
        else:
            todo.append((t, fp))
    vsec = 0.0
    bar = tqdm(
        total=len(tasks), initial=len(tasks) - len(todo), desc=desc, unit="task", disable=not cfg.progress
    )
    try:
        for task, (part, err, sec) in _map(todo, cfg):
            bar.update(1)
            if err is not None:
                result.failures.append(err)
                continue
            parts[task.key] = part
            result.tasks_run += 1
            vsec += sec
            if task.kind == "image":
                result.image_items += len(task.levels)
            if task.kind == "video":
                result.video_items += 1
    finally:
        bar.close()
    return [parts[t.key] for t in tasks if t.key in parts], vsec


def _map(todo: list[tuple[Task, str]], cfg: SynthConfig) -> Iterator[tuple[Task, tuple]]:
    if cfg.jobs <= 1 or len(todo) <= 1:
        for task, fp in todo:
            yield task, _execute(task, cfg, fp)
        return
    # spawn: workers start clean (no inherited torch/OpenMP thread state from the parent).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(_execute, task, cfg, fp): task for task, fp in todo}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


# ----------------------------------------------------------------------------- manifests


def ranking_pairs(records: list[dict]) -> list[dict]:
    """Pairs of the same content and type: pristine beats every level, lower level beats higher."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_group[r["group"]].append(r)
    pairs = []
    for group in sorted(by_group):
        recs = by_group[group]
        pristine = next((r for r in recs if r["dist_type"] == "pristine"), None)
        per_type: dict[str, list[dict]] = defaultdict(list)
        for r in recs:
            if r["dist_type"] != "pristine":
                per_type[r["dist_type"]].append(r)
        for dtype in sorted(per_type):
            ladder = sorted(per_type[dtype], key=lambda r: r["dist_level"])
            chain = ([pristine] if pristine else []) + ladder
            for i, a in enumerate(chain):
                for b in chain[i + 1 :]:
                    pairs.append(
                        {
                            "better": a["path"],
                            "worse": b["path"],
                            "group": group,
                            "dist_type": dtype,
                            "better_level": a["dist_level"],
                            "worse_level": b["dist_level"],
                        }  # fmt: skip
                    )
    return pairs


def _sort_key(r: dict) -> tuple:
    return (r["group"], r["dist_type"] != "pristine", r["dist_type"], r["dist_level"])


def build(cfg: SynthConfig) -> SynthResult:
    """Run (or resume) a synth build and write its manifests under ``cfg.out``.

    Tasks are single-threaded (``--jobs`` processes give the parallelism): torch's
    intra-op threads are set to 1 for the duration of the call and restored after.
    """
    import torch

    threads = torch.get_num_threads()
    # Small per-item tensors gain little from intra-op threads, and on a loaded machine
    # spinning OpenMP workers made the teacher ~10x slower in wall time.
    torch.set_num_threads(1)
    try:
        return _build(cfg)
    finally:
        torch.set_num_threads(threads)


def _build(cfg: SynthConfig) -> SynthResult:
    if cfg.images is None and cfg.videos is None:
        raise UsageError("synth needs --images and/or --videos")
    if cfg.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {cfg.jobs}")
    cfg = replace(cfg, out=Path(cfg.out).resolve())
    cfg.out.mkdir(parents=True, exist_ok=True)
    if cfg.teacher is not None:
        _image_teacher(cfg.teacher)  # fail early on an unknown metric, before any work
    result = SynthResult()
    img_prep, img_tasks, vid_prep, vid_tasks = plan(cfg)

    img_parts, _ = _run_phase(img_prep, cfg, "pristine images", result)
    ok = {p["task"]["content"] for p in img_parts}
    t1 = time.perf_counter()
    parts, _ = _run_phase([t for t in img_tasks if t.content in ok], cfg, "image distortions", result)
    img_parts += parts
    result.image_seconds = time.perf_counter() - t1
    t2 = time.perf_counter()
    vid_parts, _ = _run_phase(vid_prep, cfg, "pristine videos", result)
    ok = {p["task"]["content"] for p in vid_parts}
    parts, vsec = _run_phase([t for t in vid_tasks if t.content in ok], cfg, "video distortions", result)
    vid_parts += parts
    result.video_seconds = time.perf_counter() - t2
    result.video_content_seconds = vsec

    for name, frags in (("images", img_parts), ("videos", vid_parts)):
        recs = sorted((r for p in frags for r in p["records"]), key=_sort_key)
        if not recs:
            continue
        pairs = ranking_pairs(recs)
        kind = name[:-1]
        write_manifest(recs, cfg.out / f"{name}.jsonl")
        write_manifest(pairs, cfg.out / f"{kind}_pairs.jsonl")
        result.manifests[name] = cfg.out / f"{name}.jsonl"
        result.manifests[f"{kind}_pairs"] = cfg.out / f"{kind}_pairs.jsonl"
        result.counts[name] = len(recs)
        result.counts[f"{kind}_pairs"] = len(pairs)
    summary = {
        "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k != "teacher"
        },
        "teacher": cfg.teacher.spec() if cfg.teacher else None,
        "counts": result.counts,
        "failures": result.failures,
    }
    atomic_write_text(cfg.out / "synth.json", json.dumps(summary, indent=2, default=str) + "\n")
    return result

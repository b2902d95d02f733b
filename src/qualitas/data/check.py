"""``qualitas data check``: find every bad row of a manifest before training does.

Checks, per row (all rows are checked; nothing stops at the first problem):

- ``escape``: a path leaves the dataset root (``../``, absolute elsewhere);
- ``missing``: ``path``/``ref``/``better``/``worse`` does not exist under the root;
- ``decode``: the file does not decode: images fully; videos the container plus the first
  and the last frame (every frame with ``deep``); frame folders their first and last
  image (all with ``deep``);
- ``score``: ``mos``/``std``/``votes`` not finite or negative, ``mos`` outside
  ``mos_range``, or no score at all (see ``qualitas.data.manifest.validate_scores``);
- ``duplicate``: a ``path`` already seen on an earlier row (the first one is kept);
- ``group_leak``: a ``group`` found in more than one split; the rows outside the
  group's most common split (ties: train, then val) are flagged.

Good rows get their media size recorded (``width``, ``height``; videos and frame folders
also ``frames``, and videos ``fps``, ``duration``) for ``--write-clean``.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from qualitas.data.manifest import ManifestError, Record, resolve_under, validate_scores
from qualitas.errors import MediaError, UsageError, one_line

KINDS = ("escape", "missing", "decode", "score", "duplicate", "group_leak")
_PATH_FIELDS = ("path", "ref", "better", "worse")
_SPLIT_PREFERENCE = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class Problem:
    kind: str
    line: int
    path: str
    message: str


@dataclass
class CheckReport:
    total: int
    problems: list[Problem] = field(default_factory=list)
    good: list[Record] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Rows with each kind of problem (a row counts once per kind)."""
        c = Counter(kind for kind, _ in {(p.kind, p.line) for p in self.problems})
        return {k: c[k] for k in KINDS if c[k]}

    def summary(self, examples: int = 3) -> str:
        """Human-readable summary: counts per problem kind and the first examples of each."""
        bad = self.total - len(self.good)
        lines = [f"{self.total} rows: {len(self.good)} good, {bad} with problems"]
        for kind, n in self.counts().items():
            lines.append(f"  {kind}: {n} row(s)")
            for p in [p for p in self.problems if p.kind == kind][:examples]:
                where = f"line {p.line}" if p.line else "row"
                lines.append(f"    {where}: {p.path}: {p.message}" if p.path else f"    {where}: {p.message}")
        return "\n".join(lines)


def inspect_media(path: Path, deep: bool = False) -> dict:
    """Decode ``path`` as the checks require and return its size; MediaError when it fails."""
    from qualitas.io.image import read_image
    from qualitas.io.media import IMAGE_EXTENSIONS, media_kind

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise MediaError(f"{path}: frame folder holds no images")
        todo = files if deep else ([files[0], files[-1]] if len(files) > 1 else files)
        sizes = {tuple(read_image(f).data.shape[1:]) for f in todo}
        if len(sizes) > 1:
            raise MediaError(
                f"{path}: frames differ in size ({', '.join(f'{w}x{h}' for h, w in sorted(sizes))})"
            )
        h, w = sizes.pop()
        return {"width": w, "height": h, "frames": len(files)}
    if media_kind(path) == "image":
        data = read_image(path).data
        return {"width": int(data.shape[2]), "height": int(data.shape[1])}
    return _inspect_video(path, deep)


def _inspect_video(path: Path, deep: bool) -> dict:
    from qualitas.io.video import iter_frames, probe_video

    info = probe_video(path)  # opens the container and decodes the first frame
    out = {"width": info.width, "height": info.height, "fps": round(float(info.fps), 6)}
    if info.duration is not None:
        out["duration"] = round(float(info.duration), 6)
    if deep or info.duration is None:
        n = sum(1 for _ in iter_frames(path))
        if n == 0:
            raise MediaError(f"{path}: no decodable frames")
        out["frames"] = n
        return out
    # The last frame: decode from shortly before the end (the reader seeks there).
    start = max(0.0, float(info.duration) - max(2.0 / max(float(info.fps), 1e-3), 1.0))
    last = None
    for fr in iter_frames(path, start=start):
        last = fr
    if last is None:
        raise MediaError(f"{path}: the last frame does not decode")
    if info.num_frames is not None:
        out["frames"] = int(info.num_frames)
    return out


def check_records(
    records: list[Record],
    root: str | os.PathLike,
    *,
    deep: bool = False,
    mos_range: tuple[float, float] | None = None,
    progress: bool = True,
) -> CheckReport:
    """Check every row of a manifest; see the module docstring for the problem kinds."""
    from tqdm import tqdm

    root_path = Path(root)
    report = CheckReport(total=len(records))
    lo, hi = mos_range if mos_range is not None else (None, None)
    cache: dict[Path, dict | str] = {}  # references repeat: decode each file once
    bad_rows: set[int] = set()
    seen_paths: dict[str, int] = {}
    sizes: dict[int, dict] = {}

    def flag(i: int, rec: Record, kind: str, path: str, msg: str) -> None:
        report.problems.append(Problem(kind, rec.line or i + 1, path, msg))
        bad_rows.add(i)

    for i, rec in enumerate(tqdm(records, desc="checking", unit="row", disable=not progress)):
        for f in _PATH_FIELDS:
            rel = getattr(rec, f)
            if not rel:
                continue
            try:
                full = resolve_under(root_path, rel)
            except ManifestError as err:
                flag(i, rec, "escape", rel, one_line(err))
                continue
            if not full.exists():
                flag(i, rec, "missing", rel, f"{f} not found under {root_path}")
                continue
            if full not in cache:
                try:
                    cache[full] = inspect_media(full, deep)
                except (MediaError, OSError) as err:
                    cache[full] = one_line(err)
            got = cache[full]
            if isinstance(got, str):
                flag(i, rec, "decode", rel, got)
            elif f == "path":
                sizes[i] = got
        problem = validate_scores(rec, lo, hi)
        if problem is not None:
            flag(i, rec, "score", rec.path or f"{rec.better} > {rec.worse}", problem)
        if rec.path:
            if rec.path in seen_paths:
                flag(i, rec, "duplicate", rec.path, f"also on line {seen_paths[rec.path]}")
            else:
                seen_paths[rec.path] = rec.line or i + 1

    for i, split, group, splits in _group_leaks(records):
        rec = records[i]
        flag(
            i,
            rec,
            "group_leak",
            rec.path,
            f"group {group!r} is in {', '.join(splits)}; this row is in {split}",
        )

    for i, rec in enumerate(records):
        if i in bad_rows:
            continue
        if i in sizes:
            rec.extra.update(sizes[i])
        report.good.append(rec)
    report.problems.sort(key=lambda p: (KINDS.index(p.kind), p.line))
    return report


def _group_leaks(records: list[Record]) -> list[tuple[int, str, str, list[str]]]:
    """Rows whose group also appears in another split, outside the group's main split."""
    by_group: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        if rec.group is not None and rec.split is not None:
            by_group[rec.group][rec.split] += 1
    out = []
    for i, rec in enumerate(records):
        if rec.group is None or rec.split is None:
            continue
        counts = by_group[rec.group]
        if len(counts) < 2:
            continue
        main = min(counts, key=lambda s: (-counts[s], _SPLIT_PREFERENCE.get(s, 9)))
        if rec.split != main:
            out.append((i, rec.split, rec.group, sorted(counts, key=lambda s: _SPLIT_PREFERENCE.get(s, 9))))
    return out


def parse_range(values: list[str] | None) -> tuple[float, float] | None:
    if not values:
        return None
    try:
        lo, hi = (float(v) for v in values)
    except ValueError:
        raise UsageError(f"--mos-range needs two numbers, got {' '.join(values)}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise UsageError(f"--mos-range: need finite LO <= HI, got {lo:g} {hi:g}")
    return lo, hi

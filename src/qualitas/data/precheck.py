"""The check ``qualitas train`` and ``qualitas eval`` run on a manifest before they start:
every bad row found at once (missing files, paths outside the root, NaN / out-of-range /
missing scores, unreadable media), so the run can leave those rows out and say so.

``qualitas data check`` (:mod:`qualitas.data.check`) is the user-facing, deeper audit of a
manifest with its own report; this one is the quick pre-training pass. Its report is
:class:`TrainingCheck` (``CheckReport`` is its old name, kept as an alias).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qualitas.data.manifest import ManifestError, Record, resolve_under, validate_scores
from qualitas.data.media import list_frames, load_image, media_kind_of, video_num_frames
from qualitas.errors import ConfigError, QualitasError, one_line


class DataError(QualitasError):
    """Bad rows in a dataset (reported together, with counts)."""


@dataclass
class CheckReport:
    """Problems found in a manifest before training: one entry per bad row."""

    total: int = 0
    problems: list[dict] = field(default_factory=list)
    frame_counts: dict[str, int] = field(default_factory=dict)

    @property
    def bad_lines(self) -> set[int]:
        return {p["index"] for p in self.problems}

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(p["kind"] for p in self.problems))

    def summary(self, source: str = "manifest") -> str:
        """One line: how many bad rows, counts per kind, and the first example."""
        if not self.problems:
            return f"{source}: {self.total} rows, all fine"
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items(), key=lambda kv: -kv[1]))
        first = self.problems[0]
        return (
            f"{source}: {len(self.bad_lines)} of {self.total} rows are bad ({kinds}); "
            f"first: line {first['line']}: {first['message']}"
        )

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "bad_rows": len(self.bad_lines),
            "counts": self.counts,
            "problems": self.problems,
        }


def _readable(path: Path, kind: str, check_media: str) -> tuple[str | None, int | None]:
    """(problem or None, frame count for videos/folders)."""
    try:
        if kind == "frames":
            n = len(list_frames(path))
            return (None, n) if n else ("no frame images in folder", None)
        if kind == "video":
            return None, video_num_frames(path)
        if check_media == "decode":
            load_image(path)
        else:
            from PIL import Image

            with Image.open(path) as im:  # header only: cheap, catches non-images
                im.size  # noqa: B018
        return None, None
    except (QualitasError, OSError, RuntimeError, ValueError, EOFError) as err:
        return one_line(err), None


def check_records(
    records: Sequence[Record],
    root: str | Path,
    *,
    need: str = "mos",
    score_range: tuple[float, float] | None = None,
    check_media: str = "header",
    full_reference: bool = False,
) -> CheckReport:
    """Find every bad row before training: missing files, paths escaping ``root``,
    NaN / out-of-range / missing scores, unreadable media.

    Args:
        need: ``mos`` (regression), ``votes`` (distributions) or ``rank`` (pairs or MOS).
        check_media: ``header`` (open headers, probe videos), ``decode`` (decode images
            fully) or ``off`` (existence only).
    """
    if check_media not in ("header", "decode", "off"):
        raise ConfigError(f"check_media must be header, decode or off, got '{check_media}'")
    report = CheckReport(total=len(records))
    root_p = Path(root)
    seen: dict[Path, tuple[str | None, int | None]] = {}

    def bad(i: int, rec: Record, kind: str, msg: str) -> None:
        report.problems.append({"index": i, "line": rec.line, "path": rec.path, "kind": kind, "message": msg})

    for i, rec in enumerate(records):
        lo, hi = score_range if score_range is not None else (None, None)
        problem = validate_scores(rec, lo, hi)
        if problem is None and need == "votes" and not rec.votes and not rec.is_pair:
            problem = "no 'votes' histogram (needed by a distribution loss)"
        if problem is None and need == "mos" and rec.mos is None and not rec.votes:
            problem = "no 'mos'"
        if problem is not None:
            bad(i, rec, "bad score", problem)
            continue
        rels = [r for r in (rec.path, rec.ref if full_reference else None, rec.better, rec.worse) if r]
        if full_reference and rec.path and rec.ref is None:
            bad(i, rec, "missing ref", "full-reference data needs 'ref'")
            continue
        for rel in rels:
            try:
                p = resolve_under(root_p, rel)
            except ManifestError:
                bad(i, rec, "path outside root", f"path escapes the dataset root: {rel!r}")
                break
            if not p.exists():
                bad(i, rec, "missing file", f"missing file: {rel}")
                break
            if check_media == "off":
                continue
            if p not in seen:
                seen[p] = _readable(p, media_kind_of(p), check_media)
            problem, frames = seen[p]
            if problem is not None:
                bad(i, rec, "unreadable media", f"{rel}: {problem}")
                break
            if frames is not None:
                report.frame_counts[str(p)] = frames
    return report


TrainingCheck = CheckReport
check_training_records = check_records

"""The one manifest schema used by training, evaluation, converters and checks.

A manifest is plain text, one record per line: JSON Lines (``.jsonl``/``.json``) or
CSV (``.csv``, header row). Fields (documented in docs/manifest.md):

=========  ========  ============================================================
field      type      meaning
=========  ========  ============================================================
path       str       media file (image, video or frame folder), relative to root
ref        str       reference media for full-reference tasks (optional)
mos        float     mean opinion score (or teacher score) (optional for pairs)
std        float     standard deviation of the opinion scores (optional)
votes      [float]   vote histogram, lowest bin first (optional; distributions)
group      str       content id: the source/reference content (for grouped splits)
split      str       "train" | "val" | "test" (optional)
better     str       ranking pairs: the better of two media (with ``worse``)
worse      str       ranking pairs: the worse of two media
=========  ========  ============================================================

Other keys are kept in ``Record.extra`` (e.g. ``dist_type``, ``dist_level``) and written
back unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qualitas.errors import QualitasError
from qualitas.files import atomic_write_text  # noqa: F401  (re-export: its old home)

FIELDS = ("path", "ref", "mos", "std", "votes", "group", "split", "better", "worse")
SPLITS = ("train", "val", "test")


class ManifestError(QualitasError):
    """A manifest that cannot be parsed, or a record that breaks the schema."""


@dataclass
class Record:
    """One manifest row. ``path`` is empty for a pure ranking pair (``better``/``worse``)."""

    path: str = ""
    ref: str | None = None
    mos: float | None = None
    std: float | None = None
    votes: list[float] | None = None
    group: str | None = None
    split: str | None = None
    better: str | None = None
    worse: str | None = None
    extra: dict = field(default_factory=dict)
    line: int = 0
    """1-based line number in the source manifest (0 when built in memory)."""

    def to_dict(self) -> dict:
        out: dict = {}
        for key in FIELDS:
            value = getattr(self, key)
            if value is not None and value != "":
                out[key] = value
        out.update(self.extra)
        return out

    @property
    def is_pair(self) -> bool:
        return self.better is not None and self.worse is not None


def _float_or_none(value, key: str, line: int) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"line {line}: field '{key}' is not a number: {value!r}") from None


def record_from_dict(row: dict, line: int = 0) -> Record:
    """Build a :class:`Record` from a parsed row, converting types; raises ManifestError."""
    row = {k.strip() if isinstance(k, str) else k: v for k, v in row.items() if k is not None}
    votes = row.get("votes")
    if isinstance(votes, str) and votes.strip():
        # CSV stores histograms as "1 4 10 3 0" or "[1, 4, 10, 3, 0]".
        votes = votes.strip().strip("[]").replace(",", " ").split()
    if votes in ("", None):
        votes = None
    if votes is not None:
        if not isinstance(votes, list):
            raise ManifestError(f"line {line}: field 'votes' must be a list of counts")
        votes = [_float_or_none(v, "votes", line) for v in votes]
    split = row.get("split") or None
    if split is not None and split not in SPLITS:
        raise ManifestError(f"line {line}: split must be one of {', '.join(SPLITS)}, got {split!r}")
    rec = Record(
        path=str(row.get("path") or ""),
        ref=(str(row["ref"]) if row.get("ref") not in (None, "") else None),
        mos=_float_or_none(row.get("mos"), "mos", line),
        std=_float_or_none(row.get("std"), "std", line),
        votes=votes,
        group=(str(row["group"]) if row.get("group") not in (None, "") else None),
        split=split,
        better=(str(row["better"]) if row.get("better") not in (None, "") else None),
        worse=(str(row["worse"]) if row.get("worse") not in (None, "") else None),
        extra={k: v for k, v in row.items() if k not in FIELDS},
        line=line,
    )
    if not rec.path and not rec.is_pair:
        raise ManifestError(f"line {line}: a record needs 'path' (or 'better' and 'worse')")
    return rec


def read_manifest(path: str | os.PathLike) -> list[Record]:
    """Read a JSON Lines or CSV manifest. Raises ManifestError naming the bad line."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"manifest not found: {p}")
    text = p.read_text(encoding="utf-8-sig")
    records: list[Record] = []
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or ("path" not in reader.fieldnames and "better" not in reader.fieldnames):
            raise ManifestError(f"{p}: CSV manifest needs a header with a 'path' column")
        for i, row in enumerate(reader, start=2):
            records.append(record_from_dict(row, line=i))
        return records
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{p}: line {i}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{p}: line {i}: each line must be a JSON object")
        records.append(record_from_dict(row, line=i))
    return records


def write_manifest(records: Iterable[Record | dict], path: str | os.PathLike) -> None:
    """Write records atomically as JSON Lines (or CSV when ``path`` ends in ``.csv``)."""
    rows = [r.to_dict() if isinstance(r, Record) else dict(r) for r in records]
    p = Path(path)
    if p.suffix.lower() == ".csv":
        keys: list[str] = [k for k in FIELDS if any(k in r for r in rows)]
        keys += sorted({k for r in rows for k in r} - set(keys))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            r = dict(r)
            if isinstance(r.get("votes"), list):
                r["votes"] = " ".join(f"{v:g}" for v in r["votes"])
            writer.writerow(r)
        atomic_write_text(p, buf.getvalue())
    else:
        atomic_write_text(p, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def resolve_under(root: str | os.PathLike, rel: str) -> Path:
    """Resolve a manifest path under ``root``; refuse paths that escape it."""
    base = Path(root).resolve()
    full = (base / rel).resolve()
    if full != base and base not in full.parents:
        raise ManifestError(f"path escapes the dataset root: {rel!r}")
    return full


def validate_scores(rec: Record, lo: float | None = None, hi: float | None = None) -> str | None:
    """Return a one-line problem with the record's scores, or None when fine."""
    for key in ("mos", "std"):
        v = getattr(rec, key)
        if v is not None and not math.isfinite(v):
            return f"{key} is not finite ({v})"
    if rec.mos is not None and lo is not None and hi is not None and not (lo <= rec.mos <= hi):
        return f"mos {rec.mos:g} outside [{lo:g}, {hi:g}]"
    if rec.std is not None and rec.std < 0:
        return f"std is negative ({rec.std:g})"
    if rec.votes is not None:
        if any(v is None or not math.isfinite(v) or v < 0 for v in rec.votes):
            return "votes must be finite, non-negative counts"
        if sum(rec.votes) <= 0:
            return "votes histogram is empty"
    if rec.mos is None and rec.votes is None and not rec.is_pair:
        return "no score: needs mos, votes, or better/worse"
    return None

"""Catalog runs: results streamed as JSON Lines, resumable, plus per-frame CSV.

``qualitas score DIR --out results.jsonl`` writes one line per finished input, flushed at
once, so a crash or ``kill -9`` loses only the inputs in flight. Each line is the result
entry of docs/output-schema.md plus ``"key"``: a digest of the input (distorted and
reference path, size in bytes, modification time) and of the run (metric/model set and
the options that change scores). ``--resume`` keeps the lines already there, drops a
torn last line, skips inputs whose key is present and appends the rest, so the finished
file holds every input exactly once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qualitas.runtime.report import json_number, json_safe


def _stat(path: str | None) -> list[Any]:
    if path is None:
        return [None, None, None]
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None, None]
    return [str(path), st.st_size, st.st_mtime_ns]


def item_key(dist: str, ref: str | None, run: Mapping[str, Any]) -> str:
    """Digest of one input and the run settings: equal keys mean "already scored this way"."""
    blob = json.dumps([_stat(dist), _stat(ref), run], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def run_signature(
    metrics: Sequence[str] | None, model: str | None, options: Any, yuv: Any = None, ref_yuv: Any = None
) -> dict[str, Any]:
    """What makes two runs score an input the same way (part of :func:`item_key`).

    Shared by ``qualitas score --out FILE.jsonl`` and ``qualitas batch``, so that a catalog
    scored by one is "done" for the other.
    """
    return {
        "metrics": list(metrics) if metrics else None,
        "model": model,
        "options": options.to_dict(),
        "yuv": [repr(yuv), repr(ref_yuv)],
    }


def read_done(path: str | os.PathLike) -> dict[str, str]:
    """``{key: line}`` of the complete, parseable lines of an earlier run (first one wins).

    A line cut by a crash does not parse and is dropped; so are lines without a key.
    """
    done: dict[str, str] = {}
    p = Path(path)
    if not p.is_file():
        return done
    with open(p, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                continue  # torn by a crash mid-write
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            key = row.get("key") if isinstance(row, dict) else None
            if isinstance(key, str) and key not in done:
                done[key] = line
    return done


class LineWriter:
    """Appends one JSON line per result and flushes it (the file is the progress record)."""

    def __init__(self, path: str | os.PathLike, keep: Iterable[str] = ()) -> None:
        from qualitas.files import atomic_write_text

        self.path = Path(path)
        # Rewrite what is kept (atomically): removes a torn line and duplicates.
        atomic_write_text(self.path, "".join(keep))
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, row: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(json_safe(dict(row)), allow_nan=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Every result line of a JSON Lines output (for the summary and --frames-csv)."""
    return [json.loads(line) for line in read_done(path).values()]


def frames_csv(rows: Sequence[Mapping[str, Any]], metric_names: Sequence[str]) -> str:
    """Per-frame scores: ``path, ref, index, time, <metrics...>``, one row per frame of every
    video (an image is one row with index 0). Empty cell: not scored on that frame."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "ref", "index", "time", *metric_names])

    def cell(v: Any) -> str:
        if v is None:
            return ""
        v = json_number(float(v)) if not isinstance(v, str) else v
        return v if isinstance(v, str) else repr(float(v))

    for r in rows:
        if r.get("error"):
            continue
        frames = r.get("frames")
        if frames is None:
            frames = [{"index": 0, "time": None, "scores": r.get("scores") or {}}]
        for f in frames:
            t = f.get("time")
            writer.writerow(
                [
                    r["path"],
                    r.get("ref") or "",
                    f["index"],
                    "" if t is None else repr(float(t)),
                    *(cell(f["scores"].get(m)) for m in metric_names),
                ]
            )
    return buf.getvalue()

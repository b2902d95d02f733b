"""Shared machinery for dataset converters: the converter record, file lookup, readers.

A converter is a pure function ``fn(ctx: ConvertContext) -> list[Record]`` that reads a
dataset's label files and returns records whose ``path``/``ref``/``better``/``worse`` are
relative to ``ctx.src`` (the dataset folder). :func:`qualitas.data.converters.convert`
then checks every referenced file, reports the missing ones, and rebases paths onto the
manifest root. Converters never drop rows themselves.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qualitas.data.manifest import Record
from qualitas.errors import DependencyError, QualitasError
from qualitas.registry import Registry


class ConvertError(QualitasError):
    """A dataset folder or label file that does not match the expected release layout."""


@dataclass(frozen=True)
class Converter:
    """One dataset format: the function plus what the docs and the CLI say about it."""

    name: str
    fn: Callable[[ConvertContext], list[Record]]
    media: str
    """"image" or "video"."""
    reads: str
    """The label files it reads (for ``--help`` and docs)."""
    scale: str
    """Score scale as published, e.g. "MOS 1-5"."""
    higher_is_better: bool = True
    summary: str = ""

    def __call__(self, ctx: ConvertContext) -> list[Record]:
        return self.fn(ctx)


CONVERTERS: Registry[Converter] = Registry("converters")


def converter(
    name: str, *, media: str, reads: str, scale: str, higher_is_better: bool = True, summary: str = ""
) -> Callable[[Callable[[ConvertContext], list[Record]]], Callable[[ConvertContext], list[Record]]]:
    """Decorator registering ``fn`` as the converter for format ``name``."""

    def deco(fn: Callable[[ConvertContext], list[Record]]) -> Callable[[ConvertContext], list[Record]]:
        CONVERTERS.add(
            name,
            Converter(
                name=name,
                fn=fn,
                media=media,
                reads=reads,
                scale=scale,
                higher_is_better=higher_is_better,
                summary=summary or (fn.__doc__ or "").strip().splitlines()[0],
            ),
        )
        return fn

    return deco


class FileIndex:
    """Case-insensitive lookup of files under a folder (built lazily, walked once).

    Dataset releases disagree with their own label files about case (TID2013 lists
    ``i01_01_1.bmp`` for ``I01_01_1.BMP``) and extensions (videos re-muxed to ``.mp4``).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_lower: dict[str, str] | None = None
        self._by_stem: dict[str, list[str]] | None = None

    def _build(self) -> None:
        by_lower: dict[str, str] = {}
        by_stem: dict[str, list[str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                rel = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                by_lower.setdefault(rel.lower(), rel)
                by_stem.setdefault(os.path.splitext(name)[0].lower(), []).append(rel)
        self._by_lower, self._by_stem = by_lower, by_stem

    def resolve(self, rel: str) -> str | None:
        """Return the stored relative path for ``rel`` (exact, else case-insensitive), or None."""
        rel = rel.replace("\\", "/").lstrip("/")
        if (self.root / rel).exists():
            return rel
        if self._by_lower is None:
            self._build()
        assert self._by_lower is not None
        return self._by_lower.get(rel.lower())

    def by_stem(self, stem: str, under: str | None = None) -> list[str]:
        """Files whose name without extension is ``stem`` (case-insensitive), optionally under a folder."""
        if self._by_stem is None:
            self._build()
        assert self._by_stem is not None
        hits = self._by_stem.get(stem.lower(), [])
        if under:
            prefix = under.strip("/").lower() + "/"
            hits = [h for h in hits if h.lower().startswith(prefix)]
        return hits

    def glob(self, pattern: str) -> list[str]:
        """Relative paths whose lower-cased path or name matches the lower-cased pattern."""
        if self._by_lower is None:
            self._build()
        assert self._by_lower is not None
        pat = pattern.lower()
        return sorted(
            v
            for k, v in self._by_lower.items()
            if fnmatch.fnmatch(k, pat) or fnmatch.fnmatch(k.rsplit("/", 1)[-1], pat)
        )


@dataclass
class ConvertContext:
    """What a converter gets: the dataset folder, an optional label file, a file index."""

    src: Path
    label_file: Path | None = None
    """A label file named on the command line instead of a folder (used when it matches)."""
    index: FileIndex = field(init=False)
    notes: list[str] = field(default_factory=list)
    """One-line remarks the converter wants shown to the user (e.g. "no official split")."""

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        self.index = FileIndex(self.src)

    def find(self, *patterns: str, required: bool = True) -> Path | None:
        """Locate a label file by name pattern (case-insensitive), shallowest match first."""
        if self.label_file is not None and any(
            fnmatch.fnmatch(self.label_file.name.lower(), p.lower()) for p in patterns
        ):
            return self.label_file
        for pattern in patterns:
            hits = self.index.glob(pattern)
            if hits:
                hits.sort(key=lambda h: (h.count("/"), h))
                return self.src / hits[0]
        if required:
            raise ConvertError(
                f"{self.src}: none of {', '.join(patterns)} found (is this the dataset folder?)"
            )
        return None

    def find_all(self, *patterns: str) -> list[Path]:
        """All label files matching any pattern (the named label file alone if it matches)."""
        if self.label_file is not None and any(
            fnmatch.fnmatch(self.label_file.name.lower(), p.lower()) for p in patterns
        ):
            return [self.label_file]
        out: list[str] = []
        for pattern in patterns:
            out += [h for h in self.index.glob(pattern) if h not in out]
        return [self.src / h for h in sorted(out)]

    def rel(self, path: Path) -> str:
        """``path`` relative to the dataset folder, with forward slashes."""
        return os.path.relpath(path, self.src).replace(os.sep, "/")

    def media_path(self, *candidates: str, stem: str | None = None, under: str | None = None) -> str:
        """Pick the first candidate that exists (any case); else a unique stem match; else candidate 1.

        Returning the first candidate for a file that is nowhere lets ``convert`` report it
        as missing under the path the release layout says it should have.
        """
        for cand in candidates:
            hit = self.index.resolve(cand)
            if hit is not None:
                return hit
        if stem is not None:
            hits = self.index.by_stem(stem, under=under)
            if len(hits) == 1:
                return hits[0]
        return candidates[0].replace("\\", "/")


# ----------------------------------------------------------------------------- readers


def read_text(path: Path) -> str:
    """Read a label file as text (UTF-8 with BOM tolerated; Latin-1 fallback for old releases)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_csv_dicts(path: Path, delimiter: str | None = None) -> list[dict[str, str]]:
    """Rows of a CSV with a header, keys stripped; the delimiter is sniffed (`,` `;` tab)."""
    text = read_text(path)
    if delimiter is None:
        first = text.splitlines()[0] if text else ""
        delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if not reader.fieldnames:
        raise ConvertError(f"{path}: empty CSV")
    rows = []
    for row in reader:
        rows.append(
            {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in row.items()}
        )
    return rows


def read_xlsx_rows(path: Path, sheet: str | Sequence[str] | None = None) -> list[list]:
    """All rows (lists of cell values) of one worksheet of an .xlsx workbook (needs openpyxl)."""
    try:
        import openpyxl
    except ImportError:
        raise DependencyError(
            f"{path.name}: reading .xlsx needs openpyxl (pip install 'qualitas[data]'), "
            "or export the sheet to CSV next to it"
        ) from None
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        names = [sheet] if isinstance(sheet, str) else list(sheet or [])
        ws = next((wb[n] for n in names if n in wb.sheetnames), None) or wb.worksheets[0]
        return [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()


def rows_to_dicts(rows: list[list], must_have: Iterable[str], where: Path) -> list[dict[str, object]]:
    """Find the header row (the first containing all ``must_have`` names) and map the rows below."""
    need = {m.lower() for m in must_have}
    for i, row in enumerate(rows):
        names = [str(c).strip() if c is not None else "" for c in row]
        if need <= {n.lower() for n in names}:
            out = []
            for values in rows[i + 1 :]:
                if values is None or all(v is None or str(v).strip() == "" for v in values):
                    continue
                out.append({n: v for n, v in zip(names, values) if n})
            return out
    raise ConvertError(f"{where}: no header row with columns {', '.join(sorted(must_have))}")


def table_rows(path: Path, must_have: Iterable[str], sheet: str | Sequence[str] | None = None) -> list[dict]:
    """Rows of an .xlsx sheet or a CSV export of it, located by their header."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        rows = read_xlsx_rows(path, sheet)
    else:
        text = read_text(path)
        first = text.splitlines()[0] if text else ""
        delim = max((",", ";", "\t"), key=first.count)
        rows = [list(r) for r in csv.reader(io.StringIO(text), delimiter=delim)]
    return rows_to_dicts(rows, must_have, path)


def get_ci(row: dict, *names: str, default=None):
    """Value of the first column named like one of ``names`` (case/space-insensitive)."""
    norm = {str(k).strip().lower().replace(" ", "_"): v for k, v in row.items()}
    for n in names:
        v = norm.get(n.lower().replace(" ", "_"))
        if v is not None and str(v).strip() != "":
            return v
    return default


def to_float(value, what: str, where: str) -> float:
    """Parse a score; raise ConvertError naming the file and row when it is not a number."""
    try:
        out = float(str(value).strip())
    except (TypeError, ValueError):
        raise ConvertError(f"{where}: {what} is not a number: {value!r}") from None
    return out


def is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except (TypeError, ValueError):
        return False


def load_mat(path: Path) -> dict:
    """Load a MATLAB (v5) .mat file with scipy; v7.3 (HDF5) files get a clear error."""
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise ConvertError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save with -v7") from None
    except (ValueError, OSError) as err:
        raise ConvertError(f"{path}: not a readable .mat file ({err})") from None


def mat_vector(mat: dict, key: str, where: Path) -> list:
    """A MATLAB vector or cell array as a flat Python list (cells unwrapped to str/float)."""
    import numpy as np

    if key not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__"))
        raise ConvertError(f"{where}: variable {key!r} not found (has: {keys})")
    arr = np.asarray(mat[key])
    out = []
    for item in arr.reshape(-1, order="F"):
        while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
            item = item.reshape(-1)[0]
        if isinstance(item, np.ndarray):
            if item.dtype.kind in "US":
                item = "".join(item.reshape(-1).tolist()) if item.size else ""
            elif item.size == 1:
                item = item.reshape(-1)[0].item()
            else:
                raise ConvertError(f"{where}: {key!r} has a nested array where a value was expected")
        elif hasattr(item, "item"):
            item = item.item()
        out.append(item)
    return out


def stem(path: str) -> str:
    """File name without folders and extension (the usual content id)."""
    return os.path.splitext(os.path.basename(path.replace("\\", "/")))[0]

"""Catalog scoring on a Ray cluster (``qualitas batch``, :func:`score_catalog`).

Why this file is long: the Ray options, the listing reader, the actor and the resumable driver
are one feature whose parts only make sense together; none is used elsewhere.

Ray Data streams the listing (a folder, or a JSONL/CSV/Parquet manifest of paths or
dist/ref pairs) through an actor pool; every actor opens one scoring
:class:`~qualitas.runtime.score.Session` (metrics and model loaded once) and scores its
items with the same engine as ``qualitas score``. The driver writes each result as it
arrives:

* ``part-<run>.jsonl``: one flushed line per item, the entry of docs/output-schema.md
  plus ``key`` (the journal: a kill loses only the items in flight);
* ``part-<run>-<n>.parquet``: the same rows in shards of ``shard_rows``, each written
  atomically (temp file + rename).

A rerun skips every item whose key (path, size, mtime of dist and ref, plus the metric set
and options: :func:`qualitas.runtime.catalog.item_key`) is already in the output, so the
output holds every item exactly once. A bad item is a row with ``error``, never a failed job.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from qualitas.errors import QualitasError, UsageError
from qualitas.runtime.score import Pair, ScoreOptions

FORMATS = ("jsonl", "parquet", "both")
MANIFEST_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


# --------------------------------------------------------------------------- listing


def _manifest_rows(path: Path) -> Iterable[tuple[int, Any]]:
    """``(line, row)`` of a JSONL/CSV/Parquet manifest; a row that does not parse is a str."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ModuleNotFoundError:
            raise UsageError("Parquet manifests need pyarrow: pip install 'qualitas[ray]'") from None
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as err:
            raise UsageError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
        yield from enumerate(table.to_pylist(), start=1)
        return
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"path", "dist"} & set(reader.fieldnames):
            raise UsageError(f"{path}: a CSV manifest needs a header with a 'path' (or 'dist') column")
        yield from enumerate(reader, start=2)
        return
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            yield i, json.loads(raw)
        except json.JSONDecodeError as err:
            yield i, f"not valid JSON ({err.msg})"


def read_listing(manifest: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Pair]:
    """Pairs of a manifest: rows with ``path`` (or ``dist``) and optional ``ref``, relative
    to ``root`` (default: the manifest's folder). A bad row becomes a pair with an error."""
    mpath = Path(manifest)
    if not mpath.is_file():
        raise UsageError(f"manifest not found: {mpath}")
    base = Path(root) if root is not None else mpath.parent
    pairs: list[Pair] = []
    for line, row in _manifest_rows(mpath):
        where = f"{mpath}:{line}"
        if isinstance(row, str):
            pairs.append(Pair(where, None, f"{where}: {row}"))
            continue
        if not isinstance(row, Mapping):
            pairs.append(Pair(where, None, f"{where}: each row must be an object with a 'path'"))
            continue
        dist = row.get("path") or row.get("dist")
        if not isinstance(dist, str) or not dist.strip():
            pairs.append(Pair(where, None, f"{where}: no 'path' (or 'dist') in this row"))
            continue
        ref = row.get("ref")
        ref = ref if isinstance(ref, str) and ref.strip() else None
        pairs.append(Pair(str(base / dist), None if ref is None else str(base / ref)))
    return pairs


def list_items(
    sources: Sequence[str | os.PathLike], ref: str | os.PathLike | None = None, root: str | None = None
) -> list[Pair]:
    """A folder/file listing (paired with ``ref`` as ``qualitas score`` does) or one manifest."""
    from qualitas.runtime.score import collect

    if len(sources) == 1 and Path(sources[0]).suffix.lower() in MANIFEST_SUFFIXES:
        if ref is not None:
            raise UsageError("a manifest names its references in a 'ref' column; --ref does not apply")
        return read_listing(sources[0], root)
    return collect(sources, ref)


# --------------------------------------------------------------------------- output


def _float(v: Any) -> float | None:
    return None if v is None else float(v)  # float("Infinity") / float("NaN") parse back


def _parquet_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("ref", pa.string()),
            ("kind", pa.string()),
            ("width", pa.int64()),
            ("height", pa.int64()),
            ("frames_scored", pa.int64()),
            ("scores", pa.map_(pa.string(), pa.float64())),
            ("error", pa.string()),
            ("dist_frames", pa.int64()),
            ("ref_frames", pa.int64()),
            ("scaled_from", pa.list_(pa.int64())),
            ("notes", pa.list_(pa.string())),
            ("metric_errors", pa.map_(pa.string(), pa.string())),
            # Per-frame lists and stats are nested and sparse: kept as their JSON text.
            ("frames", pa.string()),
            ("stats", pa.string()),
            ("key", pa.string()),
        ]
    )


def to_parquet_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe result row -> a row of :func:`_parquet_schema` (native doubles, JSON text)."""
    out = dict(row)
    out["scores"] = [(k, _float(v)) for k, v in (row.get("scores") or {}).items()]
    out["metric_errors"] = list((row.get("metric_errors") or {}).items())
    out["frames"] = None if row.get("frames") is None else json.dumps(row["frames"])
    out["stats"] = json.dumps(row.get("stats") or {})
    return out


def from_parquet_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`to_parquet_row` (scores as floats, frames/stats parsed)."""
    from qualitas.runtime.report import json_safe

    out = dict(row)
    out["scores"] = dict(row.get("scores") or [])
    out["metric_errors"] = dict(row.get("metric_errors") or [])
    out["frames"] = None if row.get("frames") is None else json.loads(row["frames"])
    out["stats"] = json.loads(row.get("stats") or "{}")
    out["notes"] = list(row.get("notes") or [])
    return json_safe(out)


def write_parquet(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write one Parquet shard atomically (a kill leaves no half shard)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([to_parquet_row(r) for r in rows], schema=_parquet_schema())
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _jsonl_shards(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.jsonl"))


def _parquet_shards(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


def _drop_torn_lines(path: Path) -> None:
    """Rewrite a JSONL shard without a line cut by a kill (atomically), so readers parse it."""
    from qualitas.files import atomic_write_text

    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        atomic_write_text(path, data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace"))


def read_output(out: str | os.PathLike, fmt: str = "jsonl") -> dict[str, dict]:
    """``{key: row}`` of every complete row in the output folder (``fmt``: which shards)."""
    from qualitas.runtime.catalog import read_done

    out = Path(out)
    rows: dict[str, dict] = {}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for shard in _parquet_shards(out):
            for r in pq.read_table(shard).to_pylist():
                rows.setdefault(r["key"], from_parquet_row(r))
        return rows
    for shard in _jsonl_shards(out):
        for key, line in read_done(shard).items():
            rows.setdefault(key, json.loads(line))
    return rows


class ShardWriter:
    """The driver's writer: JSONL journal (flushed per row) and/or atomic Parquet shards."""

    def __init__(self, out: Path, fmt: str, shard_rows: int = 1000) -> None:
        self.out = out
        self.jsonl = fmt in ("jsonl", "both")
        self.parquet = fmt in ("parquet", "both")
        self.shard_rows = shard_rows
        # Unique per run: two runs never append to one shard.
        self.run = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self._buffer: list[dict] = []
        self._shards = 0
        self._fh: TextIO | None = None
        if self.jsonl:
            self._fh = open(out / f"part-{self.run}.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def write(self, row: Mapping[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(row, allow_nan=False) + "\n")
            self._fh.flush()
        if self.parquet:
            self._buffer.append(dict(row))
            if len(self._buffer) >= self.shard_rows:
                self.flush()

    def write_parquet_only(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rows already in the journal but in no Parquet shard (a kill before its flush)."""
        for row in rows:
            self._buffer.append(dict(row))
            if len(self._buffer) >= self.shard_rows:
                self.flush()
        self.flush()

    def flush(self) -> None:
        if self._buffer:
            write_parquet(self.out / f"part-{self.run}-{self._shards:05d}.parquet", self._buffer)
            self._shards += 1
            self._buffer = []

    def close(self) -> None:
        self.flush()
        if self._fh is not None:
            self._fh.close()
            if self._fh.name and Path(self._fh.name).stat().st_size == 0:
                Path(self._fh.name).unlink()  # a run with nothing to do leaves no empty shard


# --------------------------------------------------------------------------- actor


class ScoreActor:
    """One Ray actor: opens the scoring session once, then scores batches of items.

    ``__call__`` takes a pyarrow batch of ``dist, ref, error, key`` and returns ``key,
    row`` (the JSON text of each result, so nested results cross Ray's Arrow blocks as is).
    """

    def __init__(
        self,
        metrics: list[str] | None,
        options: ScoreOptions,
        model: str | None,
        has_ref: bool,
        kinds: list[str],
        threads: int,
    ) -> None:
        import torch

        from qualitas.runtime.score import open_session

        torch.set_num_threads(options.threads or threads)
        scorers = None
        if model is not None:
            from qualitas.runtime.models import model_scorers

            scorers = model_scorers(model, options.device)
        self.session = open_session(metrics, options, scorers=scorers, has_ref=has_ref, kinds=kinds)

    def score_one(self, dist: str, ref: str | None, error: str | None) -> dict:
        """The JSON-safe result row of one item; never raises for the item's sake."""
        from qualitas.errors import one_line
        from qualitas.runtime.report import json_safe
        from qualitas.runtime.score import Result, _guess_kind

        try:
            res = self.session.score(Pair(dist, ref, error))
        except Exception as err:  # noqa: BLE001 - one item's bug must not fail the whole job
            res = Result(path=dist, ref=ref, kind=_guess_kind(dist), error=f"internal error: {one_line(err)}")
        return json_safe(res.to_dict())

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        keys, rows = [], []
        for item in batch.to_pylist():
            row = self.score_one(item["dist"], item["ref"], item["error"])
            row["key"] = item["key"]
            keys.append(item["key"])
            rows.append(json.dumps(row, allow_nan=False))
        return pa.table({"key": keys, "row": rows})


# --------------------------------------------------------------------------- progress


class CatalogProgress:
    """``done/failed/remaining`` and items/s on stderr, at most every ``every`` seconds."""

    def __init__(self, total: int, skipped: int, enabled: bool, stream: TextIO | None = None, every=2.0):
        self.total, self.skipped = total, skipped
        self.enabled, self.every = enabled, every
        self.stream = sys.stderr if stream is None else stream
        self.done = self.failed = 0
        self.start = self._last = time.monotonic()
        self.first: float | None = None
        """When the first result arrived (start-up: Ray, actors, model loading, before it)."""

    def line(self) -> str:
        rate = self.done / max(1e-9, time.monotonic() - self.start)
        remaining = self.total - self.done
        return (
            f"qualitas batch: {self.done} done ({self.failed} failed), {remaining} remaining"
            f"{f', {self.skipped} already in the output' if self.skipped else ''}, {rate:.2f} items/s"
        )

    def update(self, failed: bool) -> None:
        if self.first is None:
            self.first = time.monotonic()
        self.done += 1
        self.failed += int(failed)
        now = time.monotonic()
        if self.enabled and now - self._last >= self.every:
            self._last = now
            self._shown = self.done
            print(self.line(), file=self.stream, flush=True)

    def finish(self) -> None:
        if self.enabled and getattr(self, "_shown", None) != self.done:
            print(self.line(), file=self.stream, flush=True)


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: cluster address (``None``: a local Ray) and actor sizes."""

    address: str | None = None
    num_cpus: int | None = None
    """Local Ray only: CPUs it may use (default: the machine's cores)."""
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    block_items: int = 4
    """Items per Ray task: smaller loses less on a kill, larger has less per-item overhead."""

    def validate(self) -> None:
        for name in ("workers", "block_items"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise UsageError("cpus per worker must be > 0 and gpus per worker >= 0")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise UsageError(f"num_cpus must be >= 1, got {self.num_cpus}")


@dataclass
class CatalogSummary:
    """What one :func:`score_catalog` call did."""

    total: int
    skipped: int
    scored: int
    failed: int
    seconds: float
    out: str
    first_result_s: float | None = None
    """Seconds to the first result (connecting, starting actors, loading the model)."""

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.scored


def _connect(ray_opts: RayOptions) -> bool:
    """Start or join Ray; True when this call started it (and so shuts it down)."""
    try:
        import ray
    except ModuleNotFoundError:
        raise UsageError("Ray scoring needs Ray: pip install 'qualitas[ray]'") from None
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if ray_opts.address:
        ray.init(address=ray_opts.address, **kwargs)
    else:
        ray.init(num_cpus=ray_opts.num_cpus or os.cpu_count() or 1, include_dashboard=False, **kwargs)
    return True


def score_catalog(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    ref: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    model: str | None = None,
    options: ScoreOptions | None = None,
    ray_options: RayOptions | None = None,
    fmt: str = "jsonl",
    shard_rows: int = 1000,
    max_items: int | None = None,
    root: str | None = None,
    progress: bool = False,
    stream: TextIO | None = None,
) -> CatalogSummary:
    """Score a folder or manifest on Ray into the folder ``out`` (resumable; see the module doc).

    ``model`` is a default name (``nr-image``), a run or an export; ``metrics`` registered
    metric names (``None``: the defaults, as ``qualitas score``). ``max_items`` stops after
    that many new results (a bounded slice of a catalog; a rerun continues).
    """
    from qualitas.runtime.catalog import item_key, run_signature
    from qualitas.runtime.defaults import default_model_for_pairs, resolve_model
    from qualitas.runtime.score import _guess_kind, open_session

    opts = options or ScoreOptions()
    ray_opts = ray_options or RayOptions()
    ray_opts.validate()
    # The driver may have no GPU (a cluster's head node): check the rest on a CPU copy.
    dataclasses.replace(opts, device="cpu").validate()
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format '{fmt}'; choose from {', '.join(FORMATS)}")
    if max_items is not None and max_items < 1:
        raise UsageError(f"max_items must be >= 1, got {max_items}")
    pairs = list_items(sources, ref, root)
    if not pairs:
        raise UsageError("no media files found in the given inputs")
    has_ref = any(p.ref is not None for p in pairs)
    if model is None and not metrics and not has_ref:
        model = default_model_for_pairs(pairs)
    model_path = resolve_model(model) if model else None
    kinds = sorted({k for p in pairs if p.error is None and (k := _guess_kind(p.dist))})
    # Fail fast on the driver for bad metric names or a model that does not fit the inputs
    # (in an actor they would surface as a dead actor, not a usage error).
    scorers = None
    if model_path is not None:
        from qualitas.runtime.models import model_scorers

        scorers = model_scorers(model_path, "cpu")
    open_session(
        metrics, dataclasses.replace(opts, device="cpu"), scorers=scorers, has_ref=has_ref, kinds=kinds
    )
    del scorers

    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder (the output is a folder of shards)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for shard in _jsonl_shards(out_dir):
        _drop_torn_lines(shard)
    journal = "parquet" if fmt == "parquet" else "jsonl"
    done = read_output(out_dir, journal)
    writer = ShardWriter(out_dir, fmt, shard_rows)
    if fmt == "both":  # Parquet catches up with rows the journal has and no shard holds yet
        in_parquet = read_output(out_dir, "parquet")
        writer.write_parquet_only(r for k, r in done.items() if k not in in_parquet)

    signature = run_signature(metrics, model_path, opts)
    seen: set[str] = set()
    todo: list[dict[str, Any]] = []
    for p in pairs:
        key = item_key(p.dist, p.ref, signature)
        if key in done or key in seen:  # listed twice: scored once
            continue
        seen.add(key)
        todo.append({"dist": p.dist, "ref": p.ref, "error": p.error, "key": key})
    skipped = len(pairs) - len(todo)
    if max_items is not None:
        todo = todo[:max_items]
    bar = CatalogProgress(len(todo), skipped, progress, stream)
    t0 = time.monotonic()
    try:
        # Items that failed listing or pairing need no actor: their rows are written here.
        from qualitas.runtime.report import json_safe
        from qualitas.runtime.score import Result

        for item in [t for t in todo if t["error"]]:
            res = Result(
                path=item["dist"], ref=item["ref"], kind=_guess_kind(item["dist"]), error=item["error"]
            )
            writer.write({**json_safe(res.to_dict()), "key": item["key"]})
            bar.update(True)
        todo = [t for t in todo if not t["error"]]
        if todo:
            _run_on_ray(todo, writer, bar, ray_opts, metrics, opts, model_path, has_ref, kinds)
    finally:
        writer.close()
    bar.finish()
    first = None if bar.first is None else bar.first - t0
    return CatalogSummary(
        len(pairs), skipped, bar.done, bar.failed, time.monotonic() - t0, str(out_dir), first
    )


def _run_on_ray(
    todo: list[dict[str, Any]],
    writer: ShardWriter,
    bar: CatalogProgress,
    ray_opts: RayOptions,
    metrics: Sequence[str] | None,
    opts: ScoreOptions,
    model_path: str | None,
    has_ref: bool,
    kinds: list[str],
) -> None:
    started = _connect(ray_opts)
    try:
        import ray

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # our own done/failed/remaining line instead
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        if ray_opts.gpus_per_worker > 0 and opts.device == "cpu":
            opts = dataclasses.replace(opts, device="cuda")  # Ray sets CUDA_VISIBLE_DEVICES
        # At least two blocks per actor, so that every actor has work from the start.
        blocks = min(len(todo), max(2 * ray_opts.workers, -(-len(todo) // ray_opts.block_items)))
        ds = ray.data.from_items(todo, override_num_blocks=blocks)
        ds = ds.map_batches(
            ScoreActor,
            fn_constructor_args=(
                list(metrics) if metrics else None,
                opts,
                model_path,
                has_ref,
                kinds,
                max(1, int(ray_opts.cpus_per_worker)),
            ),
            batch_size=None,  # one Ray block = one call: ``block_items`` items
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=ray_opts.workers),
            num_cpus=ray_opts.cpus_per_worker,
            num_gpus=ray_opts.gpus_per_worker or None,
        )
        for item in ds.iter_rows():
            row = json.loads(item["row"])
            writer.write(row)
            bar.update(bool(row.get("error")))
            if bar.done >= bar.total:
                break
    except QualitasError:
        raise
    except Exception as err:  # Ray's own failures (cluster gone, actor start) as one line
        if type(err).__module__.startswith("ray"):
            msg = str(err).strip().splitlines()
            raise QualitasError(f"Ray job failed: {msg[-1] if msg else type(err).__name__}") from None
        raise
    finally:
        if started:
            import ray

            ray.shutdown()


def summary_rows(out: str | os.PathLike, fmt: str = "jsonl") -> list[dict]:
    """Every row of the output folder (JSON-safe, the ``qualitas score`` schema plus ``key``)."""
    return list(read_output(out, "parquet" if fmt == "parquet" else "jsonl").values())


__all__ = [
    "CatalogSummary",
    "RayOptions",
    "ScoreActor",
    "list_items",
    "read_listing",
    "read_output",
    "score_catalog",
    "summary_rows",
]

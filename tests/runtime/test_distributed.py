"""Catalog scoring on Ray (``qualitas batch``): listings, shards, kill + resume exactly once."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qualitas.cli.main import main
from qualitas.errors import UsageError
from qualitas.runtime.distributed import (
    RayOptions,
    from_parquet_row,
    read_listing,
    read_output,
    score_catalog,
    to_parquet_row,
    write_parquet,
)


def test_manifest_listings_jsonl_csv_parquet_and_bad_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "m.jsonl").write_text(
        '{"path": "a.png"}\n{"dist": "b.mp4", "ref": "r.mp4"}\nnot json\n{"mos": 3}\n\n[1]\n'
    )
    pairs = read_listing(tmp_path / "m.jsonl")
    assert [(Path(p.dist).name, p.ref and Path(p.ref).name, p.error is None) for p in pairs[:2]] == [
        ("a.png", None, True),
        ("b.mp4", "r.mp4", True),
    ]
    assert [p.error.split(": ", 1)[1] for p in pairs[2:]] == [
        "not valid JSON (Expecting value)",
        "no 'path' (or 'dist') in this row",
        "each row must be an object with a 'path'",
    ]
    (tmp_path / "m.csv").write_text("dist,ref\nx.png,\ny.png,z.png\n")
    assert [(Path(p.dist).name, p.ref and Path(p.ref).name) for p in read_listing(tmp_path / "m.csv")] == [
        ("x.png", None),
        ("y.png", "z.png"),
    ]
    pq.write_table(pa.table({"path": ["v.mp4", None]}), tmp_path / "m.parquet")
    got = read_listing(tmp_path / "m.parquet", root="/data")
    assert got[0].dist == "/data/v.mp4" and got[1].error.endswith("no 'path' (or 'dist') in this row")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nope")
    with pytest.raises(UsageError, match="not a readable Parquet file"):
        read_listing(tmp_path / "bad.parquet")
    with pytest.raises(UsageError, match="manifest not found"):
        read_listing(tmp_path / "none.jsonl")


def test_parquet_rows_round_trip_the_score_schema(tmp_path):
    row = {
        "path": "a.mp4",
        "ref": "r.mp4",
        "kind": "video",
        "width": 8,
        "height": 6,
        "frames_scored": 2,
        "scores": {"psnr": "Infinity", "ssim": 0.5},
        "frames": [{"index": 0, "time": 0.0, "scores": {"psnr": "Infinity", "ssim": 0.5}}],
        "error": None,
        "dist_frames": 2,
        "ref_frames": 2,
        "scaled_from": None,
        "notes": ["n"],
        "metric_errors": {"vmaf": "why"},
        "stats": {"ssim": {"n": 2, "mean": 0.5}},
        "key": "k",
    }
    write_parquet(tmp_path / "s.parquet", [row, {**row, "key": "k2", "scores": {}, "frames": None}])
    rows = read_output(tmp_path, "parquet")
    assert rows == {}  # shards are named part-*.parquet
    os.replace(tmp_path / "s.parquet", tmp_path / "part-x.parquet")
    rows = read_output(tmp_path, "parquet")
    assert rows["k"] == row and rows["k2"]["frames"] is None
    assert math.isinf(to_parquet_row(row)["scores"][0][1]) and from_parquet_row(to_parquet_row(row)) == row


# --------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    ray.shutdown()


def _catalog(root: Path, make_video) -> Path:
    """4 images, 2 videos, 3 bad items (garbage, empty, truncated video)."""
    cat = root / "cat"
    cat.mkdir()
    for i in range(4):
        arr = np.random.default_rng(i).integers(0, 255, (40, 48, 3), np.uint8)
        Image.fromarray(arr).save(cat / f"img{i}.png")
    for i in range(2):
        os.replace(make_video(f"v{i}.mp4", n=4, size=(64, 48), seed=i), cat / f"v{i}.mp4")
    (cat / "garbage.png").write_bytes(b"this is not an image")
    (cat / "empty.jpg").write_bytes(b"")
    data = (cat / "v0.mp4").read_bytes()
    (cat / "cut.mp4").write_bytes(data[: len(data) // 3])
    return cat


def _by_path(rows):
    return {Path(r["path"]).name: r for r in rows}


@pytest.mark.slow
def test_ray_catalog_killed_part_way_resumes_each_item_once_with_plain_scores(
    tmp_path, make_video, local_ray, capsys
):
    cat = _catalog(tmp_path, make_video)
    plain = tmp_path / "plain.jsonl"
    assert main(["score", str(cat), "--metric", "brisque", "--out", str(plain), "--quiet"]) == 1
    expected = [json.loads(line) for line in plain.read_text().splitlines()]
    assert len(expected) == 9

    out = tmp_path / "out"
    ray_opts = RayOptions(workers=2, block_items=1)
    first = score_catalog([cat], out, metrics=["brisque"], ray_options=ray_opts, fmt="both", max_items=4)
    assert first.scored == 4 and first.remaining == 5
    # A kill mid-write: the journal ends in half a line (that item is lost, then redone).
    shard = next(out.glob("part-*.jsonl"))
    with open(shard, "a") as fh:
        fh.write('{"path": "torn')
    second = score_catalog(
        [cat], out, metrics=["brisque"], ray_options=ray_opts, fmt="both", progress=True, stream=sys.stderr
    )
    assert (second.skipped, second.scored, second.remaining) == (4, 5, 0)
    assert "0 remaining, 4 already in the output" in capsys.readouterr().err
    for fmt in ("jsonl", "parquet"):
        rows = list(read_output(out, fmt).values())
        assert len(rows) == 9 and len({r["path"] for r in rows}) == 9  # every item exactly once
        got, want = _by_path(rows), _by_path(expected)
        assert set(got) == set(want)
        for name, row in want.items():
            assert got[name]["key"] == row["key"]  # the same key as `qualitas score --out x.jsonl`
            assert bool(got[name]["error"]) == bool(row["error"]), name
            for metric, value in row["scores"].items():
                assert got[name]["scores"][metric] == pytest.approx(value, rel=1e-6)
    bad = {n: r["error"] for n, r in _by_path(rows).items() if r["error"]}
    assert set(bad) == {"garbage.png", "empty.jpg", "cut.mp4"} and all("\n" not in e for e in bad.values())
    # Done: a rerun scores nothing and writes no new shard.
    shards = sorted(out.iterdir())
    third = score_catalog([cat], out, metrics=["brisque"], ray_options=ray_opts, fmt="both")
    assert (third.skipped, third.scored) == (9, 0) and sorted(out.iterdir()) == shards


@pytest.mark.slow
def test_batch_command_killed_with_sigkill_then_resumed(tmp_path, make_video):
    """The real thing: ``qualitas batch`` (its own local Ray) killed by SIGKILL, then rerun."""
    cat = _catalog(tmp_path, make_video)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "qualitas", "batch", str(cat), "--out", str(out), "--metric", "brisque"]
    argv += ["--num-cpus", "2", "--block-items", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            lines = sum(len(p.read_text().splitlines()) for p in out.glob("part-*.jsonl"))
            if lines >= 2:
                break
            time.sleep(0.2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        except ProcessLookupError:
            pass
        proc.wait(30)
    before = len(read_output(out))
    assert 2 <= before <= 9
    done = subprocess.run(argv, env=env, timeout=180, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr  # 3 bad items
    rows = list(read_output(out).values())
    assert len(rows) == 9 and len({r["path"] for r in rows}) == 9

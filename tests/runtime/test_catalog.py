"""Catalog runs: streamed JSON Lines, --resume exactly once, per-input --timeout, per-frame CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import time

import numpy as np
import pytest
from isolate_helpers import probe_scorers
from PIL import Image

from qualitas.cli.main import main
from qualitas.runtime.catalog import item_key, read_done
from qualitas.runtime.score import Pair, ScoreOptions, frame_stats, score_pairs


def _images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.random.default_rng(i).integers(0, 255, (40, 48, 3), np.uint8)
        Image.fromarray(arr).save(folder / f"{i:02d}.png")
    return folder


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_streams_one_flushed_line_per_input(tmp_path, capsys):
    src = _images(tmp_path / "imgs", 3)
    (src / "zz_bad.png").write_bytes(b"not a png")
    out = tmp_path / "r.jsonl"
    seen = []

    import qualitas.runtime.catalog as catalog

    write = catalog.LineWriter.write

    def spy(self, row):
        write(self, row)
        seen.append(len(out.read_text().splitlines()))  # on disk already, before the next input

    catalog.LineWriter.write = spy
    try:
        code = main(["score", str(src), "--metric", "brisque", "--out", str(out), "--quiet"])
    finally:
        catalog.LineWriter.write = write
    assert code == 1 and seen == [1, 2, 3, 4]
    rows = _lines(out)
    assert [os.path.basename(r["path"]) for r in rows] == ["00.png", "01.png", "02.png", "zz_bad.png"]
    assert all(len(r["key"]) == 32 for r in rows) and rows[3]["error"] and rows[0]["scores"]["brisque"] > 0


def test_resume_skips_done_inputs_drops_a_torn_line_and_keeps_each_once(tmp_path, capsys):
    src = _images(tmp_path / "imgs", 4)
    out = tmp_path / "r.jsonl"
    argv = ["score", str(src), "--metric", "brisque", "--out", str(out)]
    assert main(argv) == 0
    full = _lines(out)
    # A run killed mid-write: two complete lines and half of the third.
    text = out.read_text().splitlines(keepends=True)
    out.write_text(text[0] + text[1] + text[2][: len(text[2]) // 2])
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    assert "2 already in the file" in capsys.readouterr().err
    rows = _lines(out)
    assert sorted(r["path"] for r in rows) == sorted(r["path"] for r in full)  # each exactly once
    assert {r["path"]: r["scores"] for r in rows} == {r["path"]: r["scores"] for r in full}
    # Nothing left to do: nothing rescored, file unchanged.
    before = out.read_text()
    assert main([*argv, "--resume", "--quiet"]) == 0 and out.read_text() == before
    # A changed file (new mtime) or another metric set is not "done".
    os.utime(src / "01.png", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert main([*argv, "--resume", "--quiet"]) == 0
    assert len(_lines(out)) == 5 and len(read_done(out)) == 5
    assert main([*argv[:2], "--metric", "piqe", *argv[4:], "--resume", "--quiet"]) == 0
    assert len(_lines(out)) == 9


def test_item_key_depends_on_content_identity_and_run(tmp_path):
    a = _images(tmp_path / "i", 1) / "00.png"
    k = item_key(str(a), None, {"metrics": ["psnr"]})
    assert k == item_key(str(a), None, {"metrics": ["psnr"]})
    assert k != item_key(str(a), None, {"metrics": ["ssim"]})
    a.write_bytes(a.read_bytes() + b"\0")
    assert k != item_key(str(a), None, {"metrics": ["psnr"]})


def test_resume_needs_a_jsonl_output(tmp_path, capsys):
    src = _images(tmp_path / "imgs", 1)
    assert (
        main(["score", str(src), "--metric", "brisque", "--out", str(tmp_path / "r.json"), "--resume"]) == 2
    )
    assert "--resume needs --out FILE.jsonl" in capsys.readouterr().err


@pytest.mark.slow
def test_timeout_stops_a_hung_input_and_a_crash_is_one_error(tmp_path):
    src = _images(tmp_path / "imgs", 2)
    for name in ("hang.png", "crash.png"):
        (src / name).write_bytes((src / "00.png").read_bytes())
    pairs = [Pair(str(src / n)) for n in ("00.png", "hang.png", "crash.png", "01.png")]
    done = []
    t0 = time.monotonic()
    results, infos = score_pairs(
        pairs,
        None,
        ScoreOptions(),
        scorers=probe_scorers(),
        has_ref=False,
        timeout=3.0,
        scorers_factory=probe_scorers,
        on_result=lambda i, r: done.append(i),
    )
    assert time.monotonic() - t0 < 120  # not the 600 s sleep
    assert [os.path.basename(r.path) for r in results] == ["00.png", "hang.png", "crash.png", "01.png"]
    assert results[0].scores == {"probe": 0.5} and results[3].scores == {"probe": 0.5}
    assert results[1].error == "timed out after 3 s (--timeout)"
    assert results[2].error.startswith("scoring process died (killed by signal SIGSEGV")
    assert sorted(done) == [0, 1, 2, 3] and "probe" in infos


def test_frames_csv_and_summary_stats(tmp_path, make_video):
    ref = make_video("ref.mp4", n=4, crf=0)
    dist = make_video("dist.mp4", n=4, crf=30)
    out, frames = tmp_path / "s.json", tmp_path / "f.csv"
    argv = ["score", str(dist), "--ref", str(ref), "--metric", "psnr,ssim", "--out", str(out)]
    assert main([*argv, "--frames-csv", str(frames), "--quiet"]) == 0
    r = json.loads(out.read_text())["results"][0]
    rows = list(csv.reader(io.StringIO(frames.read_text())))
    assert rows[0] == ["path", "ref", "index", "time", "psnr", "ssim"] and len(rows) == 5
    per_frame = [float(x[4]) for x in rows[1:]]
    assert per_frame == pytest.approx([f["scores"]["psnr"] for f in r["frames"]])
    st = r["stats"]["psnr"]
    assert (
        st["n"] == 4
        and st["min"] == pytest.approx(min(per_frame))
        and st["max"] == pytest.approx(max(per_frame))
    )
    assert st["mean"] == pytest.approx(r["scores"]["psnr"]) and st["std"] == pytest.approx(np.std(per_frame))
    assert st["p50"] == pytest.approx(np.median(per_frame)) and st["min"] <= st["harmonic_mean"] <= st["mean"]


def test_frame_stats_definitions():
    st = frame_stats([1.0, 2.0, 3.0, 4.0])
    assert st["mean"] == 2.5 and st["min"] == 1 and st["max"] == 4 and st["p50"] == 2.5
    assert st["harmonic_mean"] == pytest.approx(4 / (1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) - 1)
    assert frame_stats([]) == {}

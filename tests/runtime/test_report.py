"""JSON/CSV/table writers: schema, non-finite numbers, atomic writes."""

from __future__ import annotations

import csv
import io
import json
import math
import os

import pytest

from qualitas.metrics.base import MetricInfo
from qualitas.runtime import report
from qualitas.runtime.score import FrameScores, Result

INFOS = {
    "psnr": MetricInfo("psnr", True, True, (0.0, math.inf), "RGB"),
    "ssim": MetricInfo("ssim", True, True, (-1.0, 1.0), "luma"),
}


def _results() -> list[Result]:
    ok = Result(
        path="d/a.mp4",
        ref="r/a.mp4",
        kind="video",
        width=64,
        height=48,
        frames_scored=2,
        scores={"psnr": math.inf, "ssim": 0.5},
        frames=[FrameScores(0, 0.0, {"psnr": math.inf, "ssim": 0.25}), FrameScores(1, 0.04, {"psnr": 30.0})],
    )
    bad = Result(path="d/b.png", ref="r/b.png", kind="image", error="d/b.png: empty file (0 bytes)")
    nan = Result(
        path="d/c.png", ref=None, kind="image", width=4, height=4, frames_scored=1, scores={"ssim": math.nan}
    )
    return [ok, bad, nan]


def test_json_is_strict_and_encodes_non_finite_as_strings():
    text = report.format_json(_results(), INFOS, {"pool": "mean"})
    # Strict parse: Python's json would accept bare Infinity/NaN unless told otherwise.
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["version"]
    assert doc["metrics"]["psnr"] == {
        "full_reference": True,
        "higher_is_better": True,
        "range": [0.0, "Infinity"],
        "input": "RGB",
    }
    first, bad, nan = doc["results"]
    assert first["scores"] == {"psnr": "Infinity", "ssim": 0.5}
    assert float(first["scores"]["psnr"]) == math.inf  # the documented round trip
    assert first["frames"][0] == {"index": 0, "time": 0.0, "scores": {"psnr": "Infinity", "ssim": 0.25}}
    assert first["frames"][1]["scores"] == {"psnr": 30.0}
    assert bad["error"] == "d/b.png: empty file (0 bytes)" and bad["scores"] == {} and bad["frames"] is None
    assert nan["scores"]["ssim"] == "NaN" and math.isnan(float(nan["scores"]["ssim"]))
    for key in ("path", "ref", "kind", "width", "height", "frames_scored", "scores", "frames", "error"):
        assert key in bad
    assert doc["options"] == {"pool": "mean"}


def test_csv_columns_and_cells():
    text = report.format_csv(_results(), ["psnr", "ssim"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["path", "ref", "kind", "psnr", "ssim", "error", "metric_errors"]
    assert rows[1] == ["d/a.mp4", "r/a.mp4", "video", "Infinity", "0.5", "", ""]
    assert rows[2] == ["d/b.png", "r/b.png", "image", "", "", "d/b.png: empty file (0 bytes)", ""]
    assert rows[3][:2] == ["d/c.png", ""] and rows[3][4] == "NaN"
    assert float(rows[1][3]) == math.inf


def test_metric_errors_in_json_csv_and_table():
    res = Result("d/q.mp4", "r/q.mp4", "video", 176, 144, 2, scores={"psnr": 30.0})
    res.metric_errors = {"ms_ssim": "ms_ssim needs images at least 176 pixels", "vmaf": "libvmaf failed"}
    doc = json.loads(report.format_json([res], {}))
    assert doc["results"][0]["metric_errors"] == res.metric_errors and doc["results"][0]["error"] is None
    rows = list(csv.reader(io.StringIO(report.format_csv([res], ["psnr", "ms_ssim"]))))
    assert rows[1][3:] == ["30.0", "", "", "ms_ssim needs images at least 176 pixels; vmaf: libvmaf failed"]
    table = report.format_table([res], ["psnr", "ms_ssim"]).splitlines()
    assert table[2].endswith("vmaf: libvmaf failed") and " - " in table[2]


def test_table_lists_every_input_and_its_error():
    text = report.format_table(_results(), ["psnr", "ssim"])
    lines = text.splitlines()
    assert lines[0].split() == ["path", "kind", "size", "frames", "psnr", "ssim", "error"]
    assert "inf" in lines[2] and "0.5000" in lines[2] and "64x48" in lines[2]
    assert lines[3].endswith("d/b.png: empty file (0 bytes)")
    assert len(lines) == 5


def test_infer_format():
    assert report.infer_format("x/out.JSON") == "json"
    assert report.infer_format("out.csv") == "csv"
    with pytest.raises(report.UsageError, match="output format"):
        report.infer_format("out.txt")


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    out = tmp_path / "scores.json"
    report.write_json(out, _results()[:1], INFOS)
    before = out.read_text()

    real_fdopen = os.fdopen

    class Exploding:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[: len(text) // 2])  # half the document reaches the disk...
            raise OSError("disk full")  # ...then the write fails

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Exploding(real_fdopen(*a, **k)))
    with pytest.raises(OSError, match="disk full"):
        report.write_json(out, _results(), INFOS)
    with pytest.raises(OSError, match="disk full"):
        report.write_csv(tmp_path / "new.csv", _results(), ["psnr"])
    assert out.read_text() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]  # no temp, no partial new file

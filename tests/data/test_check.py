"""qualitas data check: each problem kind, sizes recorded, exit codes, --write-clean."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from qualitas.cli.main import main
from qualitas.data.check import check_records, inspect_media
from qualitas.data.manifest import Record, read_manifest, write_manifest
from qualitas.errors import MediaError


def make_clip(path: Path, n: int = 10, size: tuple[int, int] = (32, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, 10)
        for i in range(n):
            fr = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 10 * i, np.uint8), format="rgb24")
            fr.pts = i
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def png(path: Path, size=(20, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        path
    )
    return path


@pytest.fixture()
def dataset(tmp_path) -> Path:
    root = tmp_path / "ds"
    png(root / "good.png")
    png(root / "ref.png")
    png(root / "train_a.png")
    png(root / "test_a.png")
    good = png(root / "broken.png", size=(64, 64)).read_bytes()
    (root / "broken.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "notimage.png").write_bytes(b"hello")
    make_clip(root / "clip.mp4")
    for i in range(3):
        png(root / "frames" / f"{i:06d}.png")
    (tmp_path / "outside.png").write_bytes((root / "good.png").read_bytes())
    return root


def rows() -> list[Record]:
    return [
        Record(path="good.png", ref="ref.png", mos=3.0, group="g1", split="train"),  # 1 good
        Record(path="clip.mp4", mos=4.0, group="g2", split="train"),  # 2 good (video)
        Record(path="frames", mos=2.0, group="g3"),  # 3 good (frame folder)
        Record(path="missing.png", mos=3.0),  # 4 missing
        Record(path="../outside.png", mos=3.0),  # 5 escape
        Record(path="broken.png", mos=3.0),  # 6 decode (truncated)
        Record(path="notimage.png", mos=3.0),  # 7 decode (not an image)
        Record(path="good.png", mos=float("nan")),  # 8 score (nan) + duplicate
        Record(path="ref.png", mos=11.0),  # 9 score (out of range)
        Record(path="train_a.png", mos=3.0, group="leak", split="train"),  # 10 good (majority split)
        Record(path="test_a.png", mos=3.0, group="leak", split="test"),  # 11 group_leak
        Record(better="good.png", worse="missing2.png"),  # 12 missing (pair)
        Record(path="good.png", ref="nothere.png", mos=1.0),  # 13 missing ref + duplicate
    ]


def test_every_problem_kind(dataset):
    recs = rows()
    for i, r in enumerate(recs, start=1):
        r.line = i
    report = check_records(recs, dataset, mos_range=(1, 5), progress=False)
    assert report.counts() == {
        "escape": 1,
        "missing": 3,
        "decode": 2,
        "score": 2,
        "duplicate": 2,
        "group_leak": 1,
    }
    bad_lines = {p.line for p in report.problems}
    assert bad_lines == {4, 5, 6, 7, 8, 9, 11, 12, 13}
    assert [r.line for r in report.good] == [1, 2, 3, 10]
    good = {r.path: r for r in report.good}
    assert (good["good.png"].extra["width"], good["good.png"].extra["height"]) == (20, 10)
    assert good["clip.mp4"].extra["frames"] == 10 and good["clip.mp4"].extra["width"] == 32
    assert good["frames"].extra["frames"] == 3
    leak = next(p for p in report.problems if p.kind == "group_leak")
    assert leak.path == "test_a.png" and "train, test" in leak.message
    text = report.summary()
    assert "13 rows: 4 good, 9 with problems" in text and "missing: 3 row(s)" in text
    assert not report.ok


def test_deep_counts_every_frame(dataset):
    info = inspect_media(dataset / "clip.mp4", deep=True)
    assert info["frames"] == 10 and info["height"] == 24
    with pytest.raises(MediaError):
        inspect_media(dataset / "broken.png")


def test_truncated_video_fails_decode(dataset):
    data = (dataset / "clip.mp4").read_bytes()
    (dataset / "cut.mp4").write_bytes(data[: len(data) // 3])
    report = check_records([Record(path="cut.mp4", mos=1.0)], dataset, progress=False)
    assert report.counts() == {"decode": 1}


def test_cli_exit_codes_and_write_clean(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    write_manifest(rows(), bad)
    clean = tmp_path / "clean.jsonl"
    code = main(["data", "check", str(bad), "--root", str(dataset), "--mos-range", "1", "5",
                 "--write-clean", str(clean), "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "group_leak: 1 row(s)" in out
    kept = read_manifest(clean)
    assert [r.path for r in kept] == ["good.png", "clip.mp4", "frames", "train_a.png"]
    assert json.loads(clean.read_text().splitlines()[0])["width"] == 20
    assert main(["data", "check", str(clean), "--root", str(dataset), "--no-progress"]) == 0
    assert main(["data", "check", str(tmp_path / "nope.jsonl"), "--root", str(dataset)]) == 1


def test_no_progress_bar_when_stderr_is_not_a_terminal(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    write_manifest(rows(), bad)
    capsys.readouterr()
    main(["data", "check", str(bad), "--root", str(dataset)])  # no --no-progress; stderr is a pipe
    err = capsys.readouterr().err
    assert "checking" not in err and "it/s" not in err and "row/s" not in err

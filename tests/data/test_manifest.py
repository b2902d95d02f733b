"""The manifest schema: JSONL and CSV round trips, typed fields, paths kept under the root."""

from __future__ import annotations

import math

import pytest

from qualitas.data.manifest import (
    ManifestError,
    Record,
    read_manifest,
    resolve_under,
    validate_scores,
    write_manifest,
)

ROWS = [
    {
        "path": "d/a.png",
        "ref": "r/a.png",
        "mos": 3.5,
        "std": 0.4,
        "group": "a",
        "split": "train",
        "dist_type": "blur",
    },
    {"path": "d/b.png", "votes": [0, 1, 4, 2, 1], "group": "b", "split": "val"},
    {"better": "d/a.png", "worse": "d/b.png"},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_round_trip(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    write_manifest(
        [
            Record(
                **{k: v for k, v in r.items() if k != "dist_type"},
                extra=({"dist_type": r["dist_type"]} if "dist_type" in r else {}),
            )
            for r in ROWS
        ],
        path,
    )
    recs = read_manifest(path)
    assert [r.path for r in recs] == ["d/a.png", "d/b.png", ""]
    assert recs[0].mos == 3.5 and recs[0].std == 0.4 and recs[0].ref == "r/a.png"
    assert recs[0].extra["dist_type"] == "blur"
    assert recs[1].votes == [0, 1, 4, 2, 1] and recs[1].mos is None
    assert recs[2].is_pair and recs[2].better == "d/a.png"
    assert [r.split for r in recs] == ["train", "val", None]


def test_csv_votes_and_line_numbers(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("path,mos,votes\na.png,1.5,1 2 3\nb.png,x,\n")
    with pytest.raises(ManifestError, match="line 3: field 'mos' is not a number"):
        read_manifest(p)
    p.write_text('path,mos,votes\na.png,1.5,"[1, 2, 3]"\n')
    (rec,) = read_manifest(p)
    assert rec.votes == [1.0, 2.0, 3.0] and rec.line == 2


def test_jsonl_errors_name_the_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"path": "a.png", "mos": 1}\n# comment\n{"path": \n')
    with pytest.raises(ManifestError, match="line 3: not valid JSON"):
        read_manifest(p)
    p.write_text('{"path": "a.png", "split": "training"}\n')
    with pytest.raises(ManifestError, match="split must be one of train, val, test"):
        read_manifest(p)
    p.write_text('{"mos": 1}\n')
    with pytest.raises(ManifestError, match="needs 'path'"):
        read_manifest(p)


def test_resolve_under_refuses_escapes(tmp_path):
    assert resolve_under(tmp_path, "a/b.png") == (tmp_path / "a" / "b.png").resolve()
    for bad in ("../x.png", "a/../../x.png", "/etc/passwd"):
        with pytest.raises(ManifestError, match="escapes the dataset root"):
            resolve_under(tmp_path, bad)


def test_validate_scores():
    assert validate_scores(Record(path="a", mos=3.0), 1, 5) is None
    assert "outside [1, 5]" in validate_scores(Record(path="a", mos=7.0), 1, 5)
    assert "not finite" in validate_scores(Record(path="a", mos=math.nan))
    assert "negative" in validate_scores(Record(path="a", mos=1.0, std=-1.0))
    assert "empty" in validate_scores(Record(path="a", votes=[0, 0]))
    assert "no score" in validate_scores(Record(path="a"))
    assert validate_scores(Record(better="a", worse="b")) is None

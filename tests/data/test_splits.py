"""Splits: the manifest's field, else a seeded split by content group (no leakage)."""

from __future__ import annotations

import pytest

from qualitas.data.manifest import ManifestError, Record
from qualitas.data.splits import assign_splits, content_key, grouped_random_split, leaked_groups


def _records(groups: int, per: int) -> list[Record]:
    return [
        Record(path=f"g{g}/{i}.png", mos=float(i), group=f"g{g}") for g in range(groups) for i in range(per)
    ]


def test_grouped_split_keeps_each_content_in_one_split():
    recs = _records(20, 5)
    s = grouped_random_split(recs, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=3)
    assert sorted(s["train"] + s["val"] + s["test"]) == list(range(100))
    assert leaked_groups(recs, s) == []
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (70, 10, 20)


def test_grouped_split_is_seeded():
    recs = _records(12, 3)
    a = grouped_random_split(recs, seed=1)
    assert a == grouped_random_split(recs, seed=1)
    assert a != grouped_random_split(recs, seed=2)


def test_every_positive_split_gets_a_group_even_when_tiny():
    s = grouped_random_split(_records(3, 4), {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert all(len(v) == 4 for v in s.values())
    s = grouped_random_split(_records(2, 4), {"train": 0.8, "val": 0.2, "test": 0.0}, seed=0)
    assert len(s["train"]) == 4 and len(s["val"]) == 4 and s["test"] == []


def test_content_falls_back_to_reference_then_path():
    assert content_key(Record(path="a.png", ref="r.png")) == "r.png"
    assert content_key(Record(path="a.png")) == "a.png"
    recs = [Record(path=f"d{i}.png", ref=f"r{i % 3}.png", mos=1.0) for i in range(12)]
    assert leaked_groups(recs, grouped_random_split(recs, seed=0)) == []


def test_split_field_wins_and_mixed_is_an_error():
    recs = [
        Record(path=f"{i}.png", mos=1.0, split=s) for i, s in enumerate(["train", "test", "val", "train"])
    ]
    assert assign_splits(recs) == {"train": [0, 3], "val": [2], "test": [1]}
    recs[1].split = None
    with pytest.raises(ManifestError, match="1 of 4 records have no 'split'"):
        assign_splits(recs)


def test_leaked_groups_are_found():
    recs = [Record(path="a", group="x"), Record(path="b", group="x"), Record(path="c", group="y")]
    assert leaked_groups(recs, {"train": [0, 2], "test": [1]}) == ["x"]


def test_bad_ratios():
    with pytest.raises(ManifestError, match="unknown split name 'tst'"):
        grouped_random_split(_records(2, 2), {"train": 1, "tst": 1})
    with pytest.raises(ManifestError, match="not all zero"):
        grouped_random_split(_records(2, 2), {"train": 0})

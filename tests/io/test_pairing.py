"""Pairing of distorted and reference files, size policy, frame-rate check, media kinds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qualitas.errors import MediaError, UsageError
from qualitas.io.media import is_media, media_kind
from qualitas.io.pairing import check_fps, collect_pairs, match_size, size_note
from qualitas.io.video import VideoInfo


def touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


@pytest.fixture
def tree(tmp_path):
    dist, ref = tmp_path / "dist", tmp_path / "ref"
    touch(dist, "b.mp4", "a/x.mp4", "a/y.png", "notes.txt", ".hidden.mp4", ".git/z.mp4", "orphan.mkv")
    touch(ref, "b.y4m", "a/x.yuv", "a/y.bmp", "extra.mp4")
    return dist, ref


def rel(pairs, root):
    return [
        (p.dist.relative_to(root).as_posix(), p.ref.relative_to(root).as_posix() if p.ref else None, p.error)
        for p in pairs
    ]


def test_folder_to_folder_by_relative_path_ignoring_extension(tree, tmp_path):
    dist, ref = tree
    pairs = collect_pairs([dist], ref)
    assert rel(pairs, tmp_path) == [
        ("dist/a/x.mp4", "ref/a/x.yuv", None),
        ("dist/a/y.png", "ref/a/y.bmp", None),
        ("dist/b.mp4", "ref/b.y4m", None),
        ("dist/orphan.mkv", None, f"no reference found for orphan.mkv in {ref}"),
    ]


def test_no_reference_and_reference_file(tree, tmp_path):
    dist, ref = tree
    nr = collect_pairs([dist], None)
    assert [p.dist.relative_to(dist).as_posix() for p in nr] == ["a/x.mp4", "a/y.png", "b.mp4", "orphan.mkv"]
    assert all(p.ref is None and p.error is None for p in nr)
    one = collect_pairs([dist / "b.mp4", dist / "a"], ref / "extra.mp4")
    assert [(p.dist.name, p.ref.name, p.error) for p in one] == [
        ("b.mp4", "extra.mp4", None),
        ("x.mp4", "extra.mp4", None),
        ("y.png", "extra.mp4", None),
    ]


def test_file_dist_with_reference_folder_matches_by_name(tree):
    dist, ref = tree
    (p,) = collect_pairs([dist / "b.mp4"], ref)
    assert p.ref == ref / "b.y4m" and p.error is None


def test_missing_paths_become_error_entries(tree, tmp_path):
    dist, ref = tree
    pairs = collect_pairs([tmp_path / "nope.mp4", dist / "b.mp4"], ref)
    assert pairs[0].error == f"{tmp_path / 'nope.mp4'}: no such file or folder"
    assert pairs[1].error is None
    missing_ref = collect_pairs([dist / "b.mp4"], tmp_path / "noref")
    assert missing_ref[0].error and "reference not found" in missing_ref[0].error
    (empty,) = collect_pairs([_empty(tmp_path)], None)
    assert empty.error and "no image or video" in empty.error


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_ambiguous_and_same_extension_preference(tmp_path):
    dist, ref = tmp_path / "d", tmp_path / "r"
    touch(dist, "c.mp4", "e.png")
    touch(ref, "c.mp4", "c.y4m", "e.bmp", "e.tif")
    pairs = {p.dist.name: p for p in collect_pairs([dist], ref)}
    assert pairs["c.mp4"].ref == ref / "c.mp4"  # same extension wins
    assert pairs["e.png"].ref is None and "ambiguous reference for e.png" in pairs["e.png"].error


def test_match_size_scale():
    x = torch.rand(2, 3, 36, 64)
    assert match_size(x, (36, 64)) is x
    up = match_size(x, (72, 128))
    assert up.shape == (2, 3, 72, 128) and float(up.min()) >= 0 and float(up.max()) <= 1
    down = match_size(x, (18, 32))
    assert down.shape == (2, 3, 18, 32)
    # A flat frame stays flat both ways; antialiased shrink of a 1-pixel checkerboard gives grey.
    flat = torch.full((1, 3, 10, 10), 0.25)
    assert torch.allclose(match_size(flat, (25, 15)), torch.full((1, 3, 25, 15), 0.25), atol=1e-6)
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2).float().expand(1, 3, 64, 64)
    assert torch.allclose(match_size(checker, (16, 16)), torch.full((1, 3, 16, 16), 0.5), atol=0.02)
    # Unbatched input keeps its rank.
    assert match_size(torch.rand(3, 8, 8), (16, 16)).shape == (3, 16, 16)
    assert size_note((360, 640), (720, 1280)) == "scaled 640x360->1280x720 (bicubic)"
    assert size_note((720, 1280), (720, 1280)) is None


def test_match_size_error_policy():
    x = torch.rand(1, 3, 36, 64)
    assert match_size(x, (36, 64), policy="error") is x
    with pytest.raises(MediaError, match="distorted 64x36 vs reference 128x72"):
        match_size(x, (72, 128), policy="error")
    with pytest.raises(UsageError):
        match_size(x, (72, 128), policy="crop")
    with pytest.raises(MediaError, match="expected"):
        match_size(torch.rand(36, 64), (72, 128))


def _info(fps: float) -> VideoInfo:
    return VideoInfo(64, 48, fps, 10, 1.0, "yuv420p", 8, 0, "h264")


def test_check_fps():
    assert check_fps(_info(25.0), _info(25.0)) is None
    assert check_fps(_info(30000 / 1001), 29.97) is None  # same rate, rounded
    with pytest.raises(MediaError, match="frame rates differ"):
        check_fps(_info(30000 / 1001), _info(30.0))  # NTSC 29.97 vs 30 is a real mismatch
    with pytest.raises(MediaError, match="frame rates differ: distorted 30 fps vs reference 25 fps"):
        check_fps(_info(30.0), _info(25.0))
    note = check_fps(30.0, 25.0, allow_mismatch=True)
    assert note and "30 fps" in note


def test_media_kind():
    assert (
        media_kind("a/b.PNG") == "image"
        and media_kind("x.jpeg") == "image"
        and media_kind("x.webp") == "image"
    )
    for ext in ("mp4", "MKV", "mov", "avi", "webm", "y4m", "yuv", "ts"):
        assert media_kind(f"clip.{ext}") == "video"
    with pytest.raises(MediaError, match="unsupported file extension .gif"):
        media_kind("x.gif")
    with pytest.raises(MediaError, match=r"\(none\)"):
        media_kind("README")
    assert is_media("a.tiff") and not is_media("notes.txt")

"""Datasets, clip sampling, input sizing, MOS normalisation and pre-training checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from media_helpers import write_video
from qualitas.data.datasets import (
    DATASETS,
    FrameFolderDataset,
    ImageDataset,
    PairDataset,
    ScoreNorm,
    VideoDataset,
    check_records,
    collate_skip,
    pairs_from_groups,
    record_mos,
)
from qualitas.data.manifest import Record
from qualitas.data.sampling import ClipSampling, consecutive_clip, frame_step, uniform_segments
from qualitas.data.transforms import InputSize, apply_sizing, size_sample, sizing_params
from qualitas.errors import ConfigError

# ----------------------------------------------------------------------------- fixtures


def _photo(h: int = 40, w: int = 56) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100 : 100 + h, 150 : 150 + w])


def _write_video(path: Path, frames: np.ndarray, fps: int = 10) -> None:
    write_video(path, frames, fps, codec="mpeg4", options={"qscale": "1"})


def _numbered_frames(n: int, h: int = 32, w: int = 32) -> np.ndarray:
    """Frame k is a flat grey of level 8*k + 20 (identifiable after lossy coding)."""
    return np.stack([np.full((h, w, 3), 8 * k + 20, np.uint8) for k in range(n)])


def _frame_id(clip: torch.Tensor) -> list[int]:
    return [round((float(f.mean()) * 255 - 20) / 8) for f in clip]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("media")
    img = _photo()
    Image.fromarray(img).save(root / "ref.png")
    Image.fromarray((img * 0.5).astype(np.uint8)).save(root / "dist.png")
    Image.fromarray(img[:20, :28]).save(root / "small.png")  # FR: resized to its reference
    _write_video(root / "v.mp4", _numbered_frames(20))
    (root / "frames").mkdir()
    for k, f in enumerate(_numbered_frames(20)):
        Image.fromarray(f).save(root / "frames" / f"{k:03d}.png")
    (root / "broken.png").write_bytes((root / "ref.png").read_bytes()[:300])
    (root / "text.png").write_text("not an image")
    return root


# ----------------------------------------------------------------------------- sampling


def test_uniform_segments_eval_is_centred_and_train_stays_in_segment():
    assert uniform_segments(16, 4, train=False) == [1, 5, 9, 13]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        idx = uniform_segments(16, 4, train=True, generator=g)
        assert [i // 4 for i in idx] == [0, 1, 2, 3]
    assert uniform_segments(3, 6, train=False) == [0, 0, 1, 1, 2, 2]  # short video repeats


def test_consecutive_clip_and_frame_step():
    assert consecutive_clip(20, 4, step=2, train=False) == [6, 8, 10, 12]
    g = torch.Generator().manual_seed(1)
    starts = {consecutive_clip(20, 4, step=2, train=True, generator=g)[0] for _ in range(50)}
    assert starts <= set(range(0, 14)) and len(starts) > 5
    assert consecutive_clip(3, 5, train=False) == [0, 1, 2, 2, 2]
    assert frame_step(10, 3, train=False) == [0, 3, 6, 9]
    assert frame_step(10, 3, max_frames=2, train=False) == [3, 6]
    assert frame_step(4, 3, max_frames=3, train=False) == [0, 3, 3]


def test_eval_clips_spread_over_the_video():
    s = ClipSampling("uniform", 4)
    clips = s.eval_clips(16, 2)
    assert clips == [[1, 5, 9, 13], [3, 7, 11, 15]]  # a quarter and three quarters in
    assert ClipSampling("clip", 4).eval_clips(20, 3) == [[0, 1, 2, 3], [8, 9, 10, 11], [16, 17, 18, 19]]
    with pytest.raises(ConfigError, match="unknown sampling mode"):
        ClipSampling("random", 4)


# ----------------------------------------------------------------------------- sizing


def test_same_crop_for_distorted_and_reference():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 40, 56)
    dist = ref * 0.5
    for _ in range(5):
        d, r = size_sample([dist, ref], InputSize("crop", (16, 24)), train=True, generator=g)
        assert d.shape == (3, 16, 24) and torch.allclose(d, r * 0.5)


def test_center_crop_resize_and_pad():
    x = torch.arange(40 * 56, dtype=torch.float32).reshape(1, 40, 56).expand(3, 40, 56) / 4000
    (c,) = size_sample([x], InputSize("crop", (20, 20)), train=False)
    assert torch.equal(c, x[:, 10:30, 18:38])
    (r,) = size_sample([x], InputSize("resize", (10, 14)), train=False)
    assert r.shape == (3, 10, 14)
    (p,) = size_sample([torch.ones(3, 20, 40)], InputSize("pad", (32, 32)), train=False)
    assert p.shape == (3, 32, 32)
    assert (
        p[:, :8].sum() == 0 and p[:, 24:].sum() == 0 and torch.allclose(p[:, 8:24], torch.ones(3, 16, 32))
    )  # aspect kept
    (u,) = size_sample([torch.rand(3, 10, 12)], InputSize("crop", (16, 16)), train=False)
    assert u.shape == (3, 16, 16)  # too small: upscaled to fit


def test_fragments_take_native_patches_from_every_cell():
    x = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 64, 64).expand(3, 64, 64).clone()
    policy = InputSize("fragments", grid=4, patch=8)
    params = sizing_params(64, 64, policy, train=False)
    f = apply_sizing(x, params)
    assert f.shape == (3, 32, 32)
    # Each 8x8 patch is an unscaled window from its own 16x16 cell (centred in eval).
    for k, (y, xx) in enumerate(params.cells):
        i, j = divmod(k, 4)
        assert 16 * i <= y <= 16 * i + 8 and 16 * j <= xx <= 16 * j + 8
        assert torch.equal(f[:, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8], x[:, y : y + 8, xx : xx + 8])
    clip = torch.rand(5, 3, 64, 64)  # a clip: same positions on every frame
    out = apply_sizing(
        clip, sizing_params(64, 64, policy, train=True, generator=torch.Generator().manual_seed(0))
    )
    assert out.shape == (5, 3, 32, 32)


def test_bad_sizing_policies():
    with pytest.raises(ConfigError, match="needs size"):
        InputSize("crop")
    with pytest.raises(ConfigError, match="unknown input size mode"):
        InputSize("zoom", (1, 1))


# ----------------------------------------------------------------------------- datasets


def test_registry_names():
    assert {"image", "video", "frames", "pairs"} <= set(DATASETS.names())


def test_nr_and_fr_image_samples(media):
    norm = ScoreNorm.fit("minmax", [], score_range=(1.0, 5.0))
    recs = [Record(path="dist.png", ref="ref.png", mos=3.0), Record(path="small.png", ref="ref.png", mos=5.0)]
    ds = ImageDataset(recs, media, train=False, input_size=InputSize("crop", (32, 32)), score_norm=norm)
    s = ds[0]
    assert s["input"].shape == (3, 32, 32) and "ref" not in s
    assert s["target"].item() == pytest.approx(0.5) and s["mos"].item() == 3.0
    fr = ImageDataset(recs, media, train=True, input_size=InputSize("crop", (32, 32)), full_reference=True)
    s = fr[0]
    assert torch.allclose(s["input"], s["ref"] * 0.5, atol=1 / 255)  # same crop of both
    assert fr[1]["input"].shape == fr[1]["ref"].shape == (3, 32, 32)  # distorted resized to the reference
    with pytest.raises(ConfigError, match="have no 'ref'"):
        ImageDataset([Record(path="dist.png", mos=1.0)], media, train=False, full_reference=True)


def test_video_dataset_decodes_only_the_sampled_frames(media):
    recs = [Record(path="v.mp4", mos=2.0)]
    ds = VideoDataset(recs, media, train=False, sampling=ClipSampling("uniform", 4), eval_clips=2)
    assert len(ds) == 2  # two clips of one video
    a, b = ds[0], ds[1]
    assert a["input"].shape == (4, 3, 32, 32) and a["item"] == b["item"] == 0
    assert _frame_id(a["input"]) == [1, 6, 11, 16] and _frame_id(b["input"]) == [3, 8, 13, 18]
    clip = VideoDataset(recs, media, train=False, sampling=ClipSampling("clip", 3, step=2))[0]
    assert _frame_id(clip["input"]) == [7, 9, 11]
    train = VideoDataset(recs, media, train=True, sampling=ClipSampling("uniform", 4))
    torch.manual_seed(0)
    seen = {tuple(_frame_id(train[0]["input"])) for _ in range(6)}
    assert len(seen) > 1 and all([i // 5 for i in ids] == [0, 1, 2, 3] for ids in seen)


def test_frame_folder_matches_video_sampling(media):
    kw = {"train": False, "sampling": ClipSampling("uniform", 4)}
    f = FrameFolderDataset([Record(path="frames", mos=1.0)], media, **kw)[0]["input"]
    v = VideoDataset([Record(path="v.mp4", mos=1.0)], media, **kw)[0]["input"]
    assert _frame_id(f) == _frame_id(v) == [2, 7, 12, 17]


def test_pairs_from_groups_and_explicit_pairs(media):
    recs = [
        Record(path="ref.png", mos=5.0, group="a"),
        Record(path="dist.png", mos=2.0, group="a"),
        Record(path="small.png", mos=2.0, group="a"),
        Record(better="ref.png", worse="small.png"),
    ]
    assert sorted(pairs_from_groups(recs)) == [("ref.png", "dist.png"), ("ref.png", "small.png")]
    ds = PairDataset(recs, media, train=True, input_size=InputSize("crop", (16, 16)))
    assert len(ds) == 3
    s = ds[0]
    assert s["better"].shape == s["worse"].shape == (3, 16, 16)
    val = PairDataset(recs, media, train=False, input_size=InputSize("crop", (16, 16)))
    assert len(val) == 3 and "input" in val[0]  # evaluation: rows with a MOS, like images


def test_decode_failures_are_dropped_and_counted(media):
    recs = [
        Record(path="ref.png", mos=1.0),
        Record(path="broken.png", mos=2.0),
        Record(path="dist.png", mos=3.0),
    ]
    ds = ImageDataset(recs, media, train=False, input_size=InputSize("crop", (16, 16)))
    assert ds[1] is None and ds.failures["broken.png"] == 1
    batch = collate_skip([ds[i] for i in range(3)])
    assert batch["skipped"] == 1 and batch["size"] == 2 and batch["input"].shape == (2, 3, 16, 16)
    assert batch["index"].tolist() == [0, 2]
    assert collate_skip([None, None]) == {"skipped": 2, "size": 0}
    with pytest.raises(ConfigError, match="differ in shape"):
        collate_skip([{"input": torch.zeros(3, 4, 4)}, {"input": torch.zeros(3, 5, 4)}])


def test_votes_become_distributions_and_mos(media):
    recs = [Record(path="ref.png", votes=[0, 1, 3]), Record(path="dist.png", votes=[2, 2, 0])]
    assert record_mos(recs[0]) == pytest.approx((2 + 9) / 4)
    assert record_mos(recs[1], bins=[0, 5, 10]) == pytest.approx(2.5)
    s = ImageDataset(recs, media, train=False)[0]
    assert torch.allclose(s["votes"], torch.tensor([0, 0.25, 0.75]))


def test_score_norm_round_trip():
    mos = [1.0, 2.0, 4.0, 5.0]
    for kind in ("none", "minmax", "zscore"):
        n = ScoreNorm.fit(kind, mos)
        t = torch.tensor(mos)
        assert torch.allclose(n.inverse(n.forward(t)), t)
        assert ScoreNorm.from_dict(n.to_dict()) == n
    z = ScoreNorm.fit("zscore", mos)
    assert float(torch.tensor([z.forward(m) for m in mos]).mean()) == pytest.approx(0.0, abs=1e-9)
    mm = ScoreNorm.fit("minmax", mos)
    assert (mm.forward(1.0), mm.forward(5.0)) == (0.0, 1.0)
    with pytest.raises(ConfigError, match="unknown MOS normalisation"):
        ScoreNorm.fit("log", mos)


def test_check_records_finds_every_problem(media, tmp_path):
    recs = [
        Record(path="ref.png", mos=3.0, line=1),
        Record(path="gone.png", mos=3.0, line=2),
        Record(path="ref.png", mos=float("nan"), line=3),
        Record(path="ref.png", mos=9.0, line=4),
        Record(path="text.png", mos=3.0, line=5),
        Record(path="../outside.png", mos=3.0, line=6),
        Record(path="v.mp4", mos=3.0, line=7),
        Record(path="dist.png", mos=3.0, ref="missing_ref.png", line=8),
        Record(path="ref.png", line=9),
    ]
    rep = check_records(recs, media, score_range=(1, 5), full_reference=False)
    assert rep.counts == {"missing file": 1, "bad score": 3, "unreadable media": 1, "path outside root": 1}
    assert [p["line"] for p in rep.problems] == [2, 3, 4, 5, 6, 9]
    assert rep.frame_counts == {str((media / "v.mp4").resolve()): 20}
    summary = rep.summary("m.jsonl")
    assert summary.startswith("m.jsonl: 6 of 9 rows are bad (bad score 3") and "\n" not in summary
    fr = check_records(recs[7:8], media, full_reference=True)
    assert fr.counts == {"missing file": 1}
    json.dumps(rep.to_dict())  # serialisable for data_problems.json


def test_full_reference_clips_use_the_same_frames(media):
    recs = [Record(path="v.mp4", ref="v.mp4", mos=1.0)]
    ds = VideoDataset(
        recs,
        media,
        train=True,
        full_reference=True,
        sampling=ClipSampling("uniform", 4),
        input_size=InputSize("crop", (16, 16)),
    )
    torch.manual_seed(0)
    for _ in range(4):
        s = ds[0]
        assert torch.equal(s["input"], s["ref"])  # same random frames and the same crop
    f = FrameFolderDataset(
        [Record(path="frames", ref="frames", mos=1.0)],
        media,
        train=True,
        full_reference=True,
        sampling=ClipSampling("clip", 3, step=3),
    )[0]
    assert torch.equal(f["input"], f["ref"])

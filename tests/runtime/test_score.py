"""The scoring engine on real (tiny) media: pairing rules, bad inputs, video lockstep, VMAF merge."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from PIL import Image

from qualitas.errors import UsageError
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs, score_paths


def _one(dist, ref, metrics, **opts):
    results, _ = score_pairs(
        [Pair(str(dist), None if ref is None else str(ref))], metrics, ScoreOptions(**opts)
    )
    return results[0]


def test_identical_images_score_perfect_and_noise_scores_lower(make_image):
    ref = make_image("ref.png")
    same = make_image("same.png")
    noisy = make_image("noisy.png", noise=20.0)
    r_same = _one(same, ref, ["psnr", "ssim", "ms_ssim"])
    r_noisy = _one(noisy, ref, ["psnr", "ssim", "ms_ssim"])
    assert r_same.error is None and r_noisy.error is None
    assert r_same.kind == "image" and (r_same.width, r_same.height) == (192, 176)
    assert r_same.frames is None and r_same.frames_scored == 1
    assert r_same.scores["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert r_same.scores["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert r_same.scores["psnr"] >= 100.0 or math.isinf(r_same.scores["psnr"])
    assert 15.0 < r_noisy.scores["psnr"] < 30.0  # sigma 20 noise (clipped): about 22.6 dB
    assert r_noisy.scores["ssim"] < 0.9 and r_noisy.scores["ms_ssim"] < r_same.scores["ms_ssim"]


def test_psnr_of_a_constant_offset_from_first_principles(tmp_path):
    ref = np.full((32, 48, 3), 100, np.uint8)
    Image.fromarray(ref).save(tmp_path / "r.png")
    Image.fromarray(ref + 10).save(tmp_path / "d.png")
    res = _one(tmp_path / "d.png", tmp_path / "r.png", ["psnr"])
    assert res.scores["psnr"] == pytest.approx(10 * math.log10(255**2 / 10**2), abs=1e-4)


def test_video_pair_frames_lockstep_and_vmaf_merged(make_video):
    ref = make_video("ref.mp4", n=6, crf=0)
    dist = make_video("dist.mp4", n=6, crf=40)
    res = _one(dist, ref, None, batch_size=4)  # defaults: psnr, ssim, ms_ssim, vmaf
    assert res.error is None, res.error
    assert res.kind == "video" and res.frames_scored == 6 and res.dist_frames == res.ref_frames == 6
    assert [f.index for f in res.frames] == list(range(6))
    assert res.frames[1].time == pytest.approx(1 / 25)
    for f in res.frames:
        assert set(f.scores) == {"psnr", "ssim", "ms_ssim", "vmaf"}
    # pooled = mean over frames (batches of 4 + 2 were stitched correctly)
    for name in ("psnr", "ssim", "vmaf"):
        assert res.scores[name] == pytest.approx(np.mean([f.scores[name] for f in res.frames]))
    assert 0 < res.scores["vmaf"] < 100 and res.scores["ssim"] < 0.999


def test_frame_step_and_max_frames_select_the_same_frames_for_all_metrics(make_video):
    ref = make_video("ref.mp4", n=12, crf=0)
    dist = make_video("dist.mp4", n=12, crf=35)
    res = _one(dist, ref, ["psnr", "vmaf"], frame_step=3, max_frames=3, pool="min")
    assert res.error is None, res.error
    assert [f.index for f in res.frames] == [0, 3, 6]
    assert all(set(f.scores) == {"psnr", "vmaf"} for f in res.frames)
    assert res.scores["psnr"] == min(f.scores["psnr"] for f in res.frames)


def test_frame_count_mismatch_scores_common_frames_and_reports_both(make_video):
    ref = make_video("ref.mp4", n=9)
    dist = make_video("dist.mp4", n=5, crf=35)
    res = _one(dist, ref, ["psnr", "ssim"], batch_size=2)
    assert res.error is None, res.error
    assert (res.frames_scored, res.dist_frames, res.ref_frames) == (5, 5, 9)
    assert any("frame counts differ" in n for n in res.notes)
    res = _one(ref, dist, ["psnr"], batch_size=4)  # the longer one as distorted
    assert (res.frames_scored, res.dist_frames, res.ref_frames) == (5, 9, 5)


def test_fps_mismatch_is_an_error_unless_allowed(make_video):
    ref = make_video("ref.mp4", n=4, fps=25)
    dist = make_video("dist.mp4", n=4, fps=30, crf=35)
    res = _one(dist, ref, ["psnr"])
    assert res.error is not None and "frame rates differ" in res.error and "--allow-fps-mismatch" in res.error
    assert res.scores == {} and res.frames is None
    res = _one(dist, ref, ["psnr"], allow_fps_mismatch=True)
    assert res.error is None and res.frames_scored == 4
    assert any("frame rates differ" in n for n in res.notes)


def test_size_mismatch_scaled_by_default_and_recorded_or_error(make_image, make_video):
    ref = make_image("ref.png", size=(192, 176))
    small = make_image("small.png", size=(96, 88))
    res = _one(small, ref, ["psnr", "ssim"])
    assert res.error is None, res.error
    assert res.scaled_from == (96, 88) and (res.width, res.height) == (192, 176)
    assert res.notes and "scaled" in res.notes[0]
    res = _one(small, ref, ["psnr"], on_size_mismatch="error")
    assert res.error is not None and "sizes differ" in res.error and "96x88" in res.error

    vref = make_video("vref.mp4", n=3, size=(192, 176))
    vsmall = make_video("vsmall.mp4", n=3, size=(128, 112))
    res = _one(vsmall, vref, ["psnr", "vmaf"])
    assert res.error is None, res.error
    assert res.scaled_from == (128, 112) and res.frames_scored == 3
    assert set(res.frames[0].scores) == {"psnr", "vmaf"}


def _bad_inputs(tmp_path, make_image, make_video) -> dict[str, str]:
    """name -> path of each bad input kind, all next to good files."""
    good_jpg = make_image("good.jpg")
    corrupt = tmp_path / "corrupt.jpg"
    data = bytearray(good_jpg.read_bytes())
    data[200:] = bytes(len(data) - 200)  # header kept, entropy-coded data zeroed... and cut:
    corrupt.write_bytes(bytes(data[: len(data) // 3]))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    video = make_video("good.mp4", n=8)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    # Index first (faststart): the container opens, decoding then stops mid-stream.
    midstream = tmp_path / "midstream.mp4"
    fast = make_video("fast.mp4", n=12, faststart=True)
    midstream.write_bytes(fast.read_bytes()[: fast.stat().st_size * 6 // 10])
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tiny)
    return {
        "corrupt": str(corrupt),
        "empty": str(empty),
        "truncated": str(truncated),
        "midstream": str(midstream),
        "text": str(text),
        "tiny": str(tiny),
        "missing": str(tmp_path / "missing.png"),
        "unsupported": str(tmp_path / "notes.txt"),
    }


def test_each_bad_input_gets_a_one_line_error_and_the_batch_goes_on(tmp_path, make_image, make_video):
    bad = _bad_inputs(tmp_path, make_image, make_video)
    (tmp_path / "notes.txt").write_text("hello")
    good = make_image("ok.png", noise=5.0)
    paths = [bad["corrupt"], str(good), bad["empty"], bad["truncated"], bad["text"], bad["tiny"], bad["missing"],
             bad["unsupported"], bad["midstream"]]  # fmt: skip
    # NR-style run with an FR metric against the file itself is not possible, so score each
    # against a same-kind reference: images vs good.png, videos vs good.mp4.
    ref_img, ref_vid = str(good), str(tmp_path / "good.mp4")
    pairs = [Pair(p, ref_vid if p.endswith(".mp4") else ref_img) for p in paths]
    pairs[5] = Pair(bad["tiny"], bad["tiny"])  # 1x1 vs 1x1: too small for ssim's 11x11 window
    results, _ = score_pairs(pairs, ["psnr", "ssim"], ScoreOptions())
    by_name = {r.path: r for r in results}
    assert [r.path for r in results] == paths  # input order kept
    assert by_name[str(good)].error is None and by_name[str(good)].scores["psnr"] > 90
    for key in ("corrupt", "empty", "truncated", "text", "missing", "unsupported", "midstream"):
        r = by_name[bad[key]]
        assert r.error, key
        assert "\n" not in r.error and r.scores == {} and r.frames is None, key
        assert r.metric_errors == {}, key
    assert "empty" in by_name[bad["empty"]].error or "0 bytes" in by_name[bad["empty"]].error
    assert "not found" in by_name[bad["missing"]].error
    assert "truncated" in by_name[bad["midstream"]].error
    assert "unsupported" in by_name[bad["unsupported"]].error
    # 1x1 is too small for ssim's 11x11 window, not for psnr: a metric error, psnr kept.
    tiny = by_name[bad["tiny"]]
    assert tiny.error is None and tiny.partial and set(tiny.scores) == {"psnr"}
    assert "11x11" in tiny.metric_errors["ssim"] and "\n" not in tiny.metric_errors["ssim"]


def test_missing_reference_is_a_per_file_error(make_image, tmp_path):
    dist = make_image("d.png")
    res = _one(dist, tmp_path / "nope.png", ["psnr"])
    assert res.error is not None and "reference" in res.error and "not found" in res.error


def test_image_against_video_reference_is_an_error(make_image, make_video):
    res = _one(make_image("d.png"), make_video("r.mp4", n=2), ["psnr"])
    assert res.error is not None and "image" in res.error and "video" in res.error


def test_usage_errors_for_reference_rules(make_image):
    img = str(make_image("a.png"))
    with pytest.raises(UsageError, match="full-reference"):
        score_pairs([Pair(img)], ["psnr"])
    with pytest.raises(UsageError, match="--metric"):
        score_pairs([Pair(img)], None)
    with pytest.raises(UsageError, match="pooling"):
        score_pairs([Pair(img, img)], ["psnr"], ScoreOptions(pool="median"))


def test_jobs_give_the_same_results_in_order(make_image, make_video):
    ref = make_image("ref.png")
    dists = [make_image(f"d{i}.png", noise=3.0 * (i + 1), seed=i) for i in range(3)]
    pairs = [Pair(str(d), str(ref)) for d in dists]
    one, _ = score_pairs(pairs, ["psnr", "ssim"], ScoreOptions(jobs=1))
    two, _ = score_pairs(pairs, ["psnr", "ssim"], ScoreOptions(jobs=2))
    assert [r.path for r in two] == [str(d) for d in dists]
    assert [r.scores for r in one] == [r.scores for r in two]
    assert one[0].scores["psnr"] > one[1].scores["psnr"] > one[2].scores["psnr"]  # monotone in noise


def test_score_paths_pairs_folders_by_relative_path(tmp_path, make_image):
    for rel in ("a.png", "sub/b.png"):
        make_image(f"ref/{rel}")
        make_image(f"dist/{rel.replace('.png', '.jpg')}", noise=4.0)  # extension ignored
    results = score_paths([tmp_path / "dist"], ref=tmp_path / "ref", metrics=["psnr"])
    got = sorted((r.path, r.ref) for r in results)
    assert [(p.split("dist/")[1], r.split("ref/")[1]) for p, r in got] == [
        ("a.jpg", "a.png"),
        ("sub/b.jpg", "sub/b.png"),
    ]
    assert all(r.error is None for r in results)


def test_raw_yuv_input_with_spec(tmp_path, make_image):
    from qualitas.io.yuv import RawYUVSpec

    w, h, n = 192, 176, 3
    rng = np.random.default_rng(0)
    planes = rng.integers(16, 235, size=(n, w * h * 3 // 2), dtype=np.uint8)
    planes.tofile(tmp_path / "ref.yuv")
    noisy = np.clip(planes.astype(int) + rng.integers(-3, 4, planes.shape), 0, 255).astype(np.uint8)
    noisy.tofile(tmp_path / "dist.yuv")
    spec = RawYUVSpec(w, h, "yuv420p", 25)
    res = _one(tmp_path / "dist.yuv", tmp_path / "ref.yuv", ["psnr", "vmaf"], yuv=spec)
    assert res.error is None, res.error
    assert res.kind == "video" and res.frames_scored == n and 30 < res.scores["psnr"] < 60
    assert all("vmaf" in f.scores for f in res.frames)
    shutil.copy(tmp_path / "ref.yuv", tmp_path / "again.yuv")
    res = _one(tmp_path / "again.yuv", tmp_path / "ref.yuv", ["psnr"])  # no spec: clear error
    assert res.error is not None and "--size" in res.error


class _MeanLuma:
    """A stand-in for a learned NR model: any object with ``info`` and a batch call."""

    from qualitas.metrics.base import MetricInfo

    info = MetricInfo("mean_level", False, True, (0.0, 1.0), "RGB frames")

    def __call__(self, dist, ref=None):
        return dist.mean(dim=(1, 2, 3))


def test_extra_scorers_score_images_and_videos_without_reference(make_image, make_video):
    img, vid = make_image("a.png"), make_video("v.mp4", n=5)
    results, infos = score_pairs([Pair(str(img)), Pair(str(vid))], None, scorers={"mean_level": _MeanLuma()})
    assert list(infos) == ["mean_level"] and infos["mean_level"].full_reference is False
    r_img, r_vid = results
    assert r_img.error is None and 0.2 < r_img.scores["mean_level"] < 0.8
    assert r_vid.error is None and r_vid.frames_scored == 5 and r_vid.ref is None
    assert r_vid.scores["mean_level"] == pytest.approx(
        np.mean([f.scores["mean_level"] for f in r_vid.frames])
    )

"""qualitas data synth: distortions, teacher mapping, build (labels, pairs, determinism, resume)."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from qualitas.cli.main import main
from qualitas.data.manifest import read_manifest
from qualitas.data.synth import distortions as D
from qualitas.data.synth import video as V
from qualitas.data.synth.build import SynthConfig, build, ranking_pairs
from qualitas.data.synth.teacher import ImageTeacher, ImageTeacherConfig, MetricMapping, combine
from qualitas.errors import ConfigError, UsageError

TEACHER = ImageTeacherConfig.parse("ssim,psnr")  # ms_ssim needs >= 176 px; test images are 64 px


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[80:272:2, 100:292:2])  # 96x96 crop with detail


def test_at_least_15_types_all_levels_shapes(photo):
    names = D.DISTORTIONS.names()
    assert len(names) >= 15
    for must in ("gaussian_blur", "motion_blur", "lens_blur", "jpeg", "jpeg2000", "webp", "white_noise",
                 "color_noise", "impulse_noise", "multiplicative_noise", "brighten", "darken",
                 "contrast_change", "saturation_change", "color_quantization", "pixelate", "downscale_upscale"):  # fmt: skip
        assert must in names
    for name in names:
        outs = [D.apply(photo, name, lv, seed=1, content="x") for lv in range(1, 6)]
        assert all(o.shape == photo.shape and o.dtype == np.uint8 for o in outs)
        # Every type distorts, and its strongest level is further from the original than its mildest.
        assert psnr(outs[4], photo) < psnr(outs[0], photo) < 60, name


def test_distortions_deterministic_per_seed(photo):
    for name in ("white_noise", "motion_blur", "color_block", "jitter", "jpeg"):
        a = D.apply(photo, name, 3, seed=7, content="c")
        b = D.apply(photo, name, 3, seed=7, content="c")
        assert np.array_equal(a, b), name
    assert not np.array_equal(
        D.apply(photo, "white_noise", 3, seed=7), D.apply(photo, "white_noise", 3, seed=8)
    )
    with pytest.raises(UsageError):
        D.apply(photo, "jpeg", 6)
    with pytest.raises(ConfigError, match="did you mean 'jpeg2000'"):
        D.apply(photo, "jpeg200", 1)
    assert (
        D.select_levels(5) == [1, 2, 3, 4, 5]
        and D.select_levels(2) == [1, 5]
        and D.select_levels(3) == [1, 3, 5]
    )


def test_teacher_mapping_and_parse():
    cfg = ImageTeacherConfig.parse("psnr:20:40:3,ssim")
    assert cfg.mappings == (MetricMapping("psnr", 20, 40, 3), MetricMapping("ssim", 0.5, 1.0, 1.0))
    raw = {"psnr": torch.tensor([30.0, 50.0, 10.0]), "ssim": torch.tensor([1.0, 0.75, 0.5])}
    # psnr -> 50, 100, 0; ssim -> 100, 50, 0; weighted 3:1
    assert combine(raw, cfg).tolist() == pytest.approx([62.5, 87.5, 0.0])
    lower_better = MetricMapping("gmsd", 0.35, 0.0)
    assert lower_better(torch.tensor([0.0, 0.35, 0.175])).tolist() == pytest.approx([100, 0, 50], abs=1e-4)
    for bad in ("nometric", "psnr:1", "psnr:a:b", "psnr:5:5"):
        with pytest.raises(UsageError):
            ImageTeacherConfig.parse(bad)
    t = ImageTeacher(cfg)
    x = torch.rand(2, 3, 32, 32)
    score, raw = t(x, x[0])
    assert score[0].item() == pytest.approx(100.0) and raw["psnr"][0].item() == pytest.approx(100.0)
    assert score[1].item() < 100.0


def test_ranking_pairs_same_content_and_type():
    recs = [
        {"path": "r", "group": "a", "dist_type": "pristine", "dist_level": 0},
        {"path": "j1", "group": "a", "dist_type": "jpeg", "dist_level": 1},
        {"path": "j3", "group": "a", "dist_type": "jpeg", "dist_level": 3},
        {"path": "b1", "group": "a", "dist_type": "blur", "dist_level": 1},
        {"path": "o1", "group": "b", "dist_type": "jpeg", "dist_level": 1},
    ]
    pairs = {(p["better"], p["worse"]) for p in ranking_pairs(recs)}
    assert pairs == {("r", "j1"), ("r", "j3"), ("j1", "j3"), ("r", "b1")}


def make_clip(path: Path, n: int = 8, size=(64, 48)) -> Path:
    """Moving gradient, so codecs and VMAF have texture and motion to work on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10, options={"qp": "0", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, 10)
        for i in range(n):
            arr = np.stack(
                [(xx * 4 + i * 9) % 256, (yy * 5) % 256, ((xx + yy) * 3 + i * 5) % 256], -1
            ).astype(np.uint8)
            fr = av.VideoFrame.from_ndarray(arr, format="rgb24")
            fr.pts = i
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("src")
    (root / "img").mkdir()
    Image.fromarray(np.ascontiguousarray(skdata.astronaut()[::8, ::8])).save(root / "img/astronaut.png")
    Image.fromarray(np.ascontiguousarray(skdata.chelsea()[::5, ::5])).save(root / "img/cat.jpg")
    make_clip(root / "vid/gradient.mp4")
    return root / "img", root / "vid"


def small_config(out: Path, images: Path, videos: Path | None, **kw) -> SynthConfig:
    base = dict(
        out=out, images=images, videos=videos, levels=2, types=("jpeg", "gaussian_blur", "white_noise"),
        codecs=("libx264",), clip_seconds=0.5, photo_videos=1 if videos else 0, video_max_side=64,
        teacher=TEACHER, seed=3, progress=False,
    )  # fmt: skip
    base.update(kw)
    return SynthConfig(**base)


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory):
    images, videos = sources
    out = tmp_path_factory.mktemp("synth")
    return out, build(small_config(out, images, videos))


def test_build_writes_labelled_manifests(built):
    out, res = built
    assert res.failures == []
    imgs = read_manifest(out / "images.jsonl")
    assert len(imgs) == 2 * (1 + 3 * 2)
    by = {(r.group, r.extra["dist_type"], r.extra["dist_level"]): r for r in imgs}
    for content in ("astronaut", "cat"):
        assert by[(content, "pristine", 0)].mos == pytest.approx(100.0)
        for t in ("jpeg", "gaussian_blur", "white_noise"):
            mild, strong = by[(content, t, 1)], by[(content, t, 5)]
            assert 0 <= strong.mos < mild.mos < 100, (content, t)
            assert mild.ref == f"images/ref/{content}.png" and (out / mild.path).is_file()
            assert set(mild.extra["teacher"]) == {"ssim", "psnr"}
    pairs = read_manifest(out / "image_pairs.jsonl")
    assert len(pairs) == 2 * 3 * 3 and all(p.is_pair for p in pairs)
    vids = read_manifest(out / "videos.jsonl")
    # clip + photo-video, each: pristine + (libx264, downscale) x 2 levels
    assert len(vids) == 2 * (1 + 2 * 2)
    vby = {(r.group, r.extra["dist_type"], r.extra["dist_level"]): r for r in vids}
    assert {g for g, _, _ in vby} == {"gradient", "photo-astronaut"}
    for g in ("gradient", "photo-astronaut"):
        assert vby[(g, "pristine", 0)].mos > 90
        assert vby[(g, "libx264", 5)].mos < vby[(g, "libx264", 1)].mos
        assert vby[(g, "downscale", 5)].mos < vby[(g, "downscale", 1)].mos
    assert vby[("gradient", "pristine", 0)].extra["frames"] == 5  # 0.5 s at 10 fps
    assert vby[("gradient", "libx264", 5)].extra["crf"] == V.CRF_LADDERS["libx264"][4]
    summary = json.loads((out / "synth.json").read_text())
    assert summary["counts"]["images"] == 14 and summary["teacher"] == TEACHER.spec()


def test_resume_does_no_work_and_teacher_change_relabels(built, sources):
    out, first = built
    images, videos = sources
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = build(small_config(out, images, videos))
    assert again.tasks_run == 0 and again.tasks_skipped == first.tasks_run
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamp
    # Another teacher: image tasks rerun (labels depend on it), video tasks do not.
    relabel = build(small_config(out, images, videos, teacher=ImageTeacherConfig.parse("psnr")))
    assert relabel.tasks_run == 2 + 2 * 3 and relabel.video_items == 0
    assert set(read_manifest(out / "images.jsonl")[1].extra["teacher"]) == {"psnr"}


def test_resume_follows_content_not_location_or_mtime(sources, tmp_path):
    images, _ = sources
    out = tmp_path / "out"
    first = build(small_config(out, images, None, teacher=None))
    # A fresh copy elsewhere (new paths, new mtimes, same bytes) does no work.
    moved = tmp_path / "moved"
    shutil.copytree(images, moved, copy_function=shutil.copyfile)
    again = build(small_config(out, moved, None, teacher=None))
    assert again.tasks_run == 0 and again.tasks_skipped == first.tasks_run
    # New bytes in one photo: its prep and its 3 distortion tasks rerun, the other's do not.
    astro = moved / "astronaut.png"
    pixels = np.asarray(Image.open(astro)).copy()
    pixels[:8, :8] = 255 - pixels[:8, :8]
    Image.fromarray(pixels).save(astro)
    third = build(small_config(out, moved, None, teacher=None))
    assert third.tasks_run == 1 + 3 and third.tasks_skipped == first.tasks_run - 4


def test_same_seed_same_bytes_and_parallel_equals_serial(sources, tmp_path):
    images, _ = sources
    a = build(small_config(tmp_path / "a", images, None, teacher=None))
    b = build(small_config(tmp_path / "b", images, None, teacher=None, jobs=2))
    assert a.tasks_run == b.tasks_run == 2 + 2 * 3
    for p in sorted((tmp_path / "a/images").rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes(), p
    assert (tmp_path / "a/images.jsonl").read_text() == (tmp_path / "b/images.jsonl").read_text()
    c = build(small_config(tmp_path / "c", images, None, teacher=None, seed=4))
    noise = "images/white_noise/1/cat.png"
    assert c.tasks_run and (tmp_path / "c" / noise).read_bytes() != (tmp_path / "a" / noise).read_bytes()


def test_cli_synth_and_errors(sources, tmp_path, capsys):
    images, _ = sources
    out = tmp_path / "cli"
    code = main(["data", "synth", "--images", str(images), "--out", str(out), "--types", "pixelate",
                 "--levels", "1", "--teacher", "psnr", "--max-images", "1", "--no-progress"])  # fmt: skip
    assert code == 0 and "images: 2 rows" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(out)]) == 2  # neither --images nor --videos
    assert main(["data", "synth", "--images", str(images), "--out", str(out), "--types", "jpg"]) == 2
    assert main(["data", "synth", "--images", str(images), "--out", str(out), "--levels", "7"]) == 2

"""VMAF through libvmaf: equality with ffmpeg's own filter, subsampling, models, sizes, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qualitas.errors import ConfigError, DependencyError, MediaError, UsageError
from qualitas.io.yuv import RawYUVSpec
from qualitas.metrics import get_metric, vmaf
from qualitas.metrics.vmaf import VmafFrame, find_ffmpeg_with_libvmaf, score_files

try:
    find_ffmpeg_with_libvmaf()
except DependencyError as err:  # pragma: no cover - imageio-ffmpeg is a core dependency
    pytest.skip(f"no ffmpeg with libvmaf: {err}", allow_module_level=True)


def _plain_ffmpeg_libvmaf(dist: Path, ref: Path, workdir: Path, model: str = "vmaf_v0.6.1") -> dict:
    """ffmpeg's libvmaf filter run directly, with the plain arguments from its documentation."""
    subprocess.run(
        [find_ffmpeg_with_libvmaf(), "-hide_banner", "-loglevel", "error", "-i", str(dist), "-i", str(ref),
         "-lavfi", f"[0:v][1:v]libvmaf=model=version={model}:log_fmt=json:log_path=plain.json",
         "-f", "null", "-"],
        check=True, cwd=workdir,
    )  # fmt: skip
    return json.loads((workdir / "plain.json").read_text())


def test_equals_ffmpeg_libvmaf_run_directly(x264_pair, tmp_path) -> None:
    dist, ref = x264_pair
    got = score_files(dist, ref)
    plain = _plain_ffmpeg_libvmaf(dist, ref, tmp_path)
    want = [f["metrics"]["vmaf"] for f in plain["frames"]]
    assert len(got.frames) == len(want) == 64
    assert [f.index for f in got.frames] == list(range(64))
    assert max(abs(f.score - w) for f, w in zip(got.frames, want)) < 1e-6
    for key in ("mean", "harmonic_mean", "min", "max"):
        assert got.pooled[key] == pytest.approx(plain["pooled_metrics"]["vmaf"][key], abs=1e-6)
    assert 30 < got.pooled["mean"] < 99  # a real distortion, not a degenerate score
    assert got.frames[1].time == pytest.approx(1 / 25)
    assert (got.width, got.height, got.scaled) == (320, 240, False)


def test_identical_pair_scores_about_100(x264_pair) -> None:
    _, ref = x264_pair
    assert score_files(ref, ref, max_frames=16).pooled["mean"] >= 97


def test_frame_step_subsamples(x264_pair) -> None:
    dist, ref = x264_pair
    full = {f.index: f.score for f in score_files(dist, ref).frames}
    sub = score_files(dist, ref, frame_step=8)
    assert [f.index for f in sub.frames] == list(range(0, 64, 8))
    for f in sub.frames:
        assert f.score == pytest.approx(full[f.index], abs=1e-6)
        assert f.time == pytest.approx(f.index / 25)


def test_max_frames_limits_both_inputs(x264_pair) -> None:
    dist, ref = x264_pair
    assert len(score_files(dist, ref, max_frames=10).frames) == 10


def test_model_selection_changes_the_score(x264_pair, tmp_path) -> None:
    dist, ref = x264_pair
    base = score_files(dist, ref, max_frames=16).pooled["mean"]
    k4 = score_files(dist, ref, max_frames=16, model="vmaf_4k_v0.6.1").pooled["mean"]
    neg = score_files(dist, ref, max_frames=16, model="vmaf_v0.6.1neg")
    assert abs(k4 - base) > 0.5
    assert neg.pooled["mean"] != pytest.approx(base, abs=1e-3) and neg.model == "vmaf_v0.6.1neg"
    with pytest.raises(ConfigError, match="unknown vmaf model"):
        score_files(dist, ref, model="vmaf_v9")


def test_distorted_of_another_size_is_scaled_to_the_reference(make_clip, x264_pair) -> None:
    _, ref = x264_pair
    small = make_clip("small.mp4", n=8, width=160, height=120, crf=20)
    result = score_files(small, ref, max_frames=8)
    assert result.scaled and (result.width, result.height) == (320, 240)
    assert any("scale=320:240:flags=bicubic" in arg for arg in result.command)
    with pytest.raises(MediaError, match="sizes differ"):
        score_files(small, ref, scale_to_ref=False)


def test_raw_yuv_input(x264_pair, tmp_path) -> None:
    dist, ref = x264_pair
    raw = tmp_path / "ref.yuv"
    subprocess.run(
        [find_ffmpeg_with_libvmaf(), "-hide_banner", "-loglevel", "error", "-i", str(ref),
         "-f", "rawvideo", "-pix_fmt", "yuv420p", str(raw)],
        check=True,
    )  # fmt: skip
    spec = RawYUVSpec(width=320, height=240, pix_fmt="yuv420p", fps="25")
    from_raw = score_files(dist, raw, yuv_ref=spec, max_frames=16)
    from_mp4 = score_files(dist, ref, max_frames=16)
    assert from_raw.pooled["mean"] == pytest.approx(from_mp4.pooled["mean"], abs=1e-6)


def test_missing_libvmaf_is_a_clear_dependency_error(monkeypatch, tmp_path) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' .. psnr              VV->V      Calculate the PSNR.'\n")
    fake.chmod(0o755)
    monkeypatch.setenv(vmaf.FFMPEG_ENV, str(fake))
    with pytest.raises(DependencyError, match="has no libvmaf filter; pip install imageio-ffmpeg"):
        find_ffmpeg_with_libvmaf()
    monkeypatch.setenv(vmaf.FFMPEG_ENV, str(tmp_path / "nope"))
    with pytest.raises(DependencyError, match="ffmpeg not found .*QUALITAS_FFMPEG"):
        score_files(fake, fake)


def test_bad_inputs_give_media_errors(x264_pair, tmp_path) -> None:
    dist, ref = x264_pair
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(MediaError):
        score_files(text, ref)
    with pytest.raises(MediaError, match="no such file"):
        score_files(tmp_path / "missing.mp4", ref)
    with pytest.raises(UsageError, match="frame_step"):
        score_files(dist, ref, frame_step=0)


def test_ffmpeg_failure_reports_its_last_stderr_line(monkeypatch, x264_pair, tmp_path) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *-filters*) echo " .. libvmaf  VV->V  Calculate the VMAF."; exit 0;; esac\n'
        "echo 'Error initializing filter libvmaf' >&2\necho 'Conversion failed!' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv(vmaf.FFMPEG_ENV, str(fake))
    dist, ref = x264_pair
    with pytest.raises(MediaError, match="Error initializing filter libvmaf$"):
        score_files(dist, ref)


def test_metric_object_runs_on_files(x264_pair) -> None:
    metric = get_metric("vmaf")
    assert metric.info.kind == "files"
    dist, ref = x264_pair
    result = metric.score_files(dist, ref, max_frames=4)
    assert isinstance(result.frames[0], VmafFrame) and len(result.frames) == 4
    with pytest.raises(UsageError, match="whole files"):
        metric.forward(None, None)


def test_vmaf_of_an_image_pair_is_its_single_frame(tmp_path):
    """Images are single-frame inputs: identical images score ~100, a noisy copy lower."""
    from PIL import Image

    rng = np.random.default_rng(0)
    base = (np.linspace(0, 255, 96 * 128).reshape(96, 128, 1) * np.ones((1, 1, 3))).astype(np.uint8)
    noisy = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(base).save(tmp_path / "ref.png")
    Image.fromarray(noisy).save(tmp_path / "dist.png")
    same = score_files(tmp_path / "ref.png", tmp_path / "ref.png")
    worse = score_files(tmp_path / "dist.png", tmp_path / "ref.png")
    assert len(same.frames) == 1 and len(worse.frames) == 1
    assert same.pooled["mean"] > 95 and worse.pooled["mean"] < same.pooled["mean"] - 5

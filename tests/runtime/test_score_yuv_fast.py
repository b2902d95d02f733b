"""The engine's YUV fast path (``qualitas.metrics.fr_yuv``): psnr, psnr_y, ssim,
ssim_nodownsample and ms_ssim of planar YUV video computed from the decoded planes.

Every value must equal the reference path (``QUALITAS_YUV_FAST=0``: float RGB / Y' tensors
and the metric classes) within float32 rounding, far inside the calibration tolerances
(psnr: 1e-5 dB; SSIM family: 1e-4 relative). Clips are made here: x264 yuv420p of saturated
colour blocks over a moving gradient (so the RGB conversion clips), raw 4:4:4 8-bit and
4:2:0 10-bit, a clip below MS-SSIM's minimum, and a folder of pairs for ``--jobs``.
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from qualitas.cli.main import main
from qualitas.io.yuv import RawYUVSpec
from qualitas.metrics import fr_yuv
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs

NAMES = ["psnr", "psnr_y", "ssim", "ssim_nodownsample", "ms_ssim"]
PSNR_ATOL_DB = 1e-5
SSIM_RTOL = 1e-5  # float32 rounding; the calibration tolerance is 1e-4


def _content(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8: a moving gradient with saturated colour blocks and some noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    blocks = rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3))
    blocks = np.where(blocks > 127, 255, 0)  # pure primaries/secondaries: clip in YUV->RGB
    for i in range(n):
        base = (xx * 255 // max(1, w - 1) + 7 * i) % 256
        img = np.stack([base, (yy * 255 // max(1, h - 1)) % 256, 255 - base], axis=-1)
        col = blocks[yy // 16, (xx + 3 * i) // 16 % blocks.shape[1]]
        mask = ((yy // 16 + xx // 16) % 3 == 0)[..., None]
        img = np.where(mask, col, img) + rng.normal(0, 6, size=(h, w, 3))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(frames)


def _encode(path, frames: np.ndarray, crf: int) -> str:
    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        st.options = {"crf": str(crf), "preset": "ultrafast"}
        for i, arr in enumerate(frames):
            f = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
            f.pts = i
            for pkt in st.encode(f):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return str(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("yuvfast")
    frames = _content(5, 192, 224)
    return {
        "ref": _encode(root / "ref.mp4", frames, crf=2),
        "dist": _encode(root / "dist.mp4", frames, crf=40),
        "dist_short": _encode(root / "dist_short.mp4", frames[:3], crf=30),
        "small_ref": _encode(root / "small_ref.mp4", frames[:2, :144, :176], crf=2),
        "small_dist": _encode(root / "small_dist.mp4", frames[:2, :144, :176], crf=35),
    }


def _score(dist: str, ref: str, names, monkeypatch, fast: bool, **kw):
    monkeypatch.setenv(fr_yuv.FAST_ENV, "1" if fast else "0")
    (res,), _ = score_pairs([Pair(dist, ref)], names, ScoreOptions(**kw))
    return res


def _count_fast_calls(monkeypatch) -> list[int]:
    calls = [0]
    original = fr_yuv.YuvFrameScorer.score

    def counting(self, d, r):
        calls[0] += 1
        return original(self, d, r)

    monkeypatch.setattr(fr_yuv.YuvFrameScorer, "score", counting)
    return calls


def _assert_same(fast, ref, names) -> None:
    assert fast.error is None and ref.error is None, (fast.error, ref.error)
    assert [f.index for f in fast.frames] == [f.index for f in ref.frames]
    for name in names:
        a = np.array([f.scores[name] for f in fast.frames])
        b = np.array([f.scores[name] for f in ref.frames])
        if name.startswith("psnr"):
            np.testing.assert_allclose(a, b, rtol=0, atol=PSNR_ATOL_DB, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=SSIM_RTOL, atol=0, err_msg=name)
        tol = {"abs": PSNR_ATOL_DB} if name.startswith("psnr") else {"rel": SSIM_RTOL}
        assert fast.scores[name] == pytest.approx(ref.scores[name], **tol)


def test_fast_path_equals_reference_path_on_x264(clips, monkeypatch):
    calls = _count_fast_calls(monkeypatch)
    fast = _score(clips["dist"], clips["ref"], NAMES, monkeypatch, fast=True)
    assert calls[0] == 5  # every frame pair went through the fast path
    ref = _score(clips["dist"], clips["ref"], NAMES, monkeypatch, fast=False)
    assert calls[0] == 5  # ... and the reference run did not
    _assert_same(fast, ref, NAMES)
    assert 15 < fast.scores["psnr"] < 45 and 0.2 < fast.scores["ssim"] < 0.999  # a real distortion


def test_identical_inputs_and_frame_selection(clips, monkeypatch):
    same = _score(clips["ref"], clips["ref"], ["psnr", "psnr_y", "ssim"], monkeypatch, fast=True)
    assert same.scores == {"psnr": 100.0, "psnr_y": 100.0, "ssim": 1.0}
    kw = {"frame_step": 2, "max_frames": 2}
    fast = _score(clips["dist"], clips["ref"], ["psnr", "ms_ssim"], monkeypatch, fast=True, **kw)
    ref = _score(clips["dist"], clips["ref"], ["psnr", "ms_ssim"], monkeypatch, fast=False, **kw)
    assert [f.index for f in fast.frames] == [0, 2]
    _assert_same(fast, ref, ["psnr", "ms_ssim"])


def test_frame_count_mismatch_and_small_frames_as_the_reference_path(clips, monkeypatch):
    fast = _score(clips["dist_short"], clips["ref"], ["psnr", "ssim"], monkeypatch, fast=True)
    ref = _score(clips["dist_short"], clips["ref"], ["psnr", "ssim"], monkeypatch, fast=False)
    assert (fast.dist_frames, fast.ref_frames) == (ref.dist_frames, ref.ref_frames) == (3, 5)
    assert fast.notes == ref.notes and any("frame counts differ" in n for n in fast.notes)
    _assert_same(fast, ref, ["psnr", "ssim"])
    # QCIF is below MS-SSIM's 176 px: that metric fails with the same one-line error, psnr scores.
    small = {}
    for fast_on in (True, False):
        small[fast_on] = _score(
            clips["small_dist"], clips["small_ref"], ["psnr", "ms_ssim"], monkeypatch, fast_on
        )
    assert small[True].metric_errors == small[False].metric_errors
    assert "ms_ssim needs images at least 176 pixels" in small[True].metric_errors["ms_ssim"]
    _assert_same(small[True], small[False], ["psnr"])


@pytest.mark.parametrize(("pix_fmt", "bits"), [("yuv444p", 8), ("yuv420p10le", 10)])
def test_raw_yuv_444_and_10bit(tmp_path, monkeypatch, pix_fmt, bits):
    h, w, n = 180, 200, 2
    rng = np.random.default_rng(1)
    spec = RawYUVSpec(w, h, pix_fmt=pix_fmt, fps=25)
    dtype = np.uint16 if bits > 8 else np.uint8
    top = 2**bits - 1
    paths = {}
    for name, noise in (("ref", 0), ("dist", 12)):
        data = []
        for i in range(n):
            for rows, cols in spec.plane_shapes():
                yy, xx = np.mgrid[0:rows, 0:cols]
                plane = (xx * top // cols + 5 * i + yy) % (top + 1) + rng.normal(
                    0, noise * (top / 255), (rows, cols)
                )
                data.append(np.clip(plane, 0, top).astype(dtype).ravel())  # full code range: clips in RGB
        paths[name] = tmp_path / f"{name}.yuv"
        np.concatenate(data).astype("<u2" if bits > 8 else np.uint8).tofile(paths[name])
    runs = {}
    for fast_on in (True, False):
        runs[fast_on] = _score(
            str(paths["dist"]), str(paths["ref"]), NAMES, monkeypatch, fast_on, yuv=spec, ref_yuv=spec
        )
    _assert_same(runs[True], runs[False], NAMES)


def test_jobs_over_a_folder_of_pairs(tmp_path, clips, monkeypatch):
    refs, dists = tmp_path / "ref", tmp_path / "dist"
    refs.mkdir()
    dists.mkdir()
    for i, seed in enumerate((3, 4, 5)):
        frames = _content(3, 192, 208, seed=seed)
        _encode(refs / f"clip{i}.mp4", frames, crf=2)
        _encode(dists / f"clip{i}.mp4", frames, crf=30 + 4 * i)
    rows = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}.json"
        argv = ["score", str(dists), "--ref", str(refs), "--metric", "psnr,ssim", "--jobs", str(jobs)]
        assert main([*argv, "--out", str(out), "--quiet"]) == 0
        rows[jobs] = {r["path"]: r["scores"] for r in json.loads(out.read_text())["results"]}
    assert len(rows[1]) == 3 and rows[1] == rows[2]
    monkeypatch.setenv(fr_yuv.FAST_ENV, "0")
    out = tmp_path / "reference.json"
    assert (
        main(["score", str(dists), "--ref", str(refs), "--metric", "psnr,ssim", "--out", str(out), "--quiet"])
        == 0
    )
    reference = {r["path"]: r["scores"] for r in json.loads(out.read_text())["results"]}
    for path, scores in rows[2].items():
        assert scores["psnr"] == pytest.approx(reference[path]["psnr"], abs=PSNR_ATOL_DB)
        assert scores["ssim"] == pytest.approx(reference[path]["ssim"], rel=SSIM_RTOL)
    psnrs = [rows[2][str(dists / f"clip{i}.mp4")]["psnr"] for i in range(3)]
    assert psnrs[0] > psnrs[1] > psnrs[2]  # stronger compression, lower PSNR


# What must not be imported by `qualitas score --metric psnr,ssim` of a YUV video pair: the
# fast path needs numpy, PyAV and numba only; torch alone costs ~2 s of start-up per process.
_NO_HEAVY = """
import json, sys
from qualitas.cli.main import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "timm", "lightning", "torchvision", "PIL") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize("container", ["mp4", "yuv"])
def test_score_of_a_yuv_video_pair_imports_no_torch(tmp_path, container):
    import os
    import subprocess
    import sys

    frames = _content(3, 48, 64)
    ref = _encode(tmp_path / "ref.mp4", frames, 0)
    dist = _encode(tmp_path / "dist.mp4", frames, 40)
    extra, opts = [], {}
    if container == "yuv":  # the same pair as raw yuv420p files
        for name in ("ref", "dist"):
            with av.open(ref if name == "ref" else dist) as c:
                data = [f.to_ndarray().ravel() for f in c.decode(video=0)]
            (tmp_path / f"{name}.yuv").write_bytes(np.concatenate(data).tobytes())
        ref, dist = str(tmp_path / "ref.yuv"), str(tmp_path / "dist.yuv")
        extra = ["--size", "64x48", "--fps", "25"]
        spec = RawYUVSpec(64, 48, pix_fmt="yuv420p", fps=25)
        opts = {"yuv": spec, "ref_yuv": spec}
    out = tmp_path / "o.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop(fr_yuv.FAST_ENV, None)
    args = [dist, "--ref", ref, *extra, "--metric", "psnr,psnr_y,ssim", "--out", str(out), "--quiet"]
    run = subprocess.run(
        [sys.executable, "-c", _NO_HEAVY, "score", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    row = json.loads(run.stdout.strip().splitlines()[-1])
    assert row == {"code": 0, "heavy": []}, run.stderr[-2000:]
    # ... and it scored: the same values as this (torch-importing) process' engine.
    result = json.loads(out.read_text())["results"][0]
    assert result["frames_scored"] == 3
    res, _ = score_pairs([Pair(dist, ref)], ["psnr", "psnr_y", "ssim"], ScoreOptions(**opts))
    for name in ("psnr", "psnr_y", "ssim"):
        assert result["scores"][name] == pytest.approx(res[0].scores[name], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("h, w", [(11, 11), (12, 13), (13, 20), (30, 27), (45, 64)])
def test_ssim_sums_kernel_equals_ssim_means_for_every_row_parity(h, w):
    """The 11-tap kernel filters output rows in pairs (the last one alone for an odd count):
    every size must give ``ssim_means``' values, and ``want_s=False`` the same contrast-structure."""
    import torch

    from qualitas.functional import yuv_kernels
    from qualitas.functional.filters import gaussian_kernel1d
    from qualitas.metrics.ssim import K1, K2, L, ssim_means

    rng = np.random.default_rng(h * 100 + w)
    x = (rng.random((h, w)) * 255).astype(np.float32)
    y = np.clip(x + rng.normal(0, 20, (h, w)), 0, 255).astype(np.float32)
    taps = yuv_kernels.gaussian_taps(11, 1.5)
    c1, c2 = np.float32((K1 * L) ** 2), np.float32((K2 * L) ** 2)
    s, c, n = yuv_kernels.ssim_sums(x, y, taps, c1, c2)
    assert n == (h - 10) * (w - 10)
    ref_s, ref_c = ssim_means(
        torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None], gaussian_kernel1d(11, 1.5)
    )
    assert s / n == pytest.approx(float(ref_s[0]), rel=SSIM_RTOL)
    assert c / n == pytest.approx(float(ref_c[0]), rel=SSIM_RTOL)
    s0, c0, _ = yuv_kernels.ssim_sums(x, y, taps, c1, c2, False)
    assert s0 == 0.0 and c0 == pytest.approx(c, rel=1e-6)
    same = yuv_kernels.ssim_sums(x, x.copy(), taps, c1, c2)
    assert same[0] == same[1] == float(same[2])  # identical inputs: exactly 1 everywhere


@pytest.mark.parametrize("f", [2, 3, 4])
@pytest.mark.parametrize("h, w", [(8, 8), (9, 7), (15, 22)])
def test_box_downsample_kernel_equals_the_reference_bit_for_bit(f, h, w):
    import torch

    from qualitas.functional import yuv_kernels
    from qualitas.functional.filters import box_downsample

    x = (np.random.default_rng(h * w + f).random((h, w)) * 255).astype(np.float32)
    ref = box_downsample(torch.from_numpy(x)[None, None], f)[0, 0].numpy()
    assert np.array_equal(yuv_kernels.box_downsample_2d(x, f), ref)


@pytest.mark.parametrize("f", [2, 3, 4, 5])
@pytest.mark.parametrize("h, w", [(5, 5), (6, 11), (9, 7), (17, 30)])
def test_gray_downsampled_kernel_equals_gray_then_box(f, h, w):
    """SSIM's gray + box downsampling in one pass (a kernel of its own for ``f = 4``) gives the
    floats of the gray map then :func:`box_downsample_2d` (itself the reference's, above).
    Sides >= f: ``ssim.m`` downsamples by f only sides of >= 256 (f - 1/2) pixels."""
    from qualitas.functional import yuv_kernels

    y = np.random.default_rng(h + w + f).integers(0, 256, (h, w + 3), dtype=np.uint8)  # padded rows
    p = yuv_kernels.luma_params(8, False)
    want = yuv_kernels.box_downsample_2d(yuv_kernels.gray255(y, w, p), f)
    assert np.array_equal(yuv_kernels.gray255_downsampled(y, w, p, f), want)

"""The scoring engine's fast paths give the same numbers as the plain definitions.

Covers recycled batch buffers with prefetching, the shared gray input of SSIM/MS-SSIM,
tiled SSIM means, chunked MSE and block-wise YUV->RGB (budget: a few seconds).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qualitas.io._convert as convert
import qualitas.metrics.psnr as psnr_mod
import qualitas.runtime.options as score_mod  # the engine reads BATCH_PIXEL_BUDGET from its home
from media_helpers import write_video
from qualitas.functional.filters import gaussian_kernel1d
from qualitas.io.video import iter_batches, iter_frames
from qualitas.metrics import get_metric
from qualitas.metrics.ssim import ms_ssim, ssim, ssim_maps, ssim_means
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs

SIZE = 192  # MS-SSIM needs >= 176 px


def _encode(path, frames: list[np.ndarray], crf: int) -> str:
    return str(write_video(path, np.stack(frames), crf=crf))


@pytest.fixture(scope="module")
def clip_pair(tmp_path_factory):
    """Seven different smooth-noise frames: reference (CRF 5) and distorted (CRF 40)."""
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(7):
        small = rng.integers(0, 256, (SIZE // 8, SIZE // 8, 3)).astype(np.float32)
        frames.append(np.kron(small, np.ones((8, 8, 1), np.float32)).astype(np.uint8))
    root = tmp_path_factory.mktemp("fast")
    return _encode(root / "dist.mp4", frames, 40), _encode(root / "ref.mp4", frames, 5)


@pytest.mark.parametrize("mode", ["prefetch", "no-prefetch", "convert-late"])
def test_engine_matches_direct_metric_calls(clip_pair, monkeypatch, mode: str) -> None:
    dist, ref = clip_pair
    names = ["psnr", "ssim", "ms_ssim"]
    # Several batches, so buffers are recycled; "convert-late" makes these frames count as
    # large (one per batch, decoded ahead and converted in the scoring thread).
    opts = ScoreOptions(batch_size=None if mode == "convert-late" else 2, prefetch=mode != "no-prefetch")
    if mode == "convert-late":
        monkeypatch.setattr(score_mod, "BATCH_PIXEL_BUDGET", SIZE * SIZE)
    (res,), _ = score_pairs([Pair(dist, ref)], names, opts)
    assert res.error is None and res.frames_scored == 7
    d = torch.stack([f.data for f in iter_frames(dist)])
    r = torch.stack([f.data for f in iter_frames(ref)])
    # SSIM and MS-SSIM of YUV video read the Y plane (docs/metrics.md), psnr the RGB frames.
    dl = next(iter_batches(dist, 7, rgb=False, luma=True)).luma
    rl = next(iter_batches(ref, 7, rgb=False, luma=True)).luma
    for name in names:
        metric = get_metric(name)
        if name == "psnr":
            want = metric(d, r).tolist()
        else:
            want = metric.score_prepared(metric.prepare_luma(dl), metric.prepare_luma(rl)).tolist()
        got = [f.scores[name] for f in res.frames]
        assert got == pytest.approx(want, rel=1e-6), name
    assert len({round(f.scores["psnr"], 6) for f in res.frames}) == 7  # really different frames


def test_reuse_buffer_rotates_n_tensors(clip_pair) -> None:
    batches = [b.data for b in iter_batches(clip_pair[1], 2, reuse_buffer=2)]
    ptrs = [b.data_ptr() for b in batches[:3]]
    assert ptrs[0] == ptrs[2] != ptrs[1]


def test_shared_gray_input_gives_the_same_scores() -> None:
    g = torch.Generator().manual_seed(0)
    d, r = torch.rand(2, 3, 200, 210, generator=g), torch.rand(2, 3, 200, 210, generator=g)
    r = 0.7 * d + 0.3 * r
    for name in ("ssim", "ms_ssim"):
        metric = get_metric(name)
        assert metric.shared_input == "gray255_matlab"
        assert torch.equal(metric.score_prepared(metric.prepare(d), metric.prepare(r)), metric(d, r))
    assert torch.equal(get_metric("ssim")(d, r), ssim(d, r))
    assert torch.equal(get_metric("ms_ssim")(d, r), ms_ssim(d, r))


@pytest.mark.parametrize("tile_rows", [1, 3, 16, 1000])
def test_tiled_ssim_means_equal_mean_of_full_maps(tile_rows: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = 255 * torch.rand(3, 1, 37, 45, generator=g, dtype=torch.float64)
    y = (0.6 * x + 100 * torch.rand(3, 1, 37, 45, generator=g, dtype=torch.float64)).clamp(0, 255)
    win = gaussian_kernel1d(11, 1.5, dtype=torch.float64)
    s_map, cs_map = ssim_maps(x, y, win)
    s, cs = ssim_means(x, y, win, tile_rows=tile_rows)
    torch.testing.assert_close(s, s_map.flatten(1).mean(1), rtol=1e-12, atol=0)
    torch.testing.assert_close(cs, cs_map.flatten(1).mean(1), rtol=1e-12, atol=0)


def test_chunked_mse_matches_float64(monkeypatch) -> None:
    monkeypatch.setattr(psnr_mod, "CHUNK_PIXELS", 50)  # several chunks, a short last one
    g = torch.Generator().manual_seed(2)
    d, r = torch.rand(2, 3, 23, 7, generator=g), torch.rand(2, 3, 23, 7, generator=g)
    want = ((d.double() - r.double()) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(psnr_mod.mse(d, r), want, rtol=1e-6, atol=0)


@pytest.mark.parametrize(("h", "w", "dy", "dx"), [(9, 7, 2, 2), (10, 12, 2, 2), (7, 6, 1, 2), (5, 5, 1, 1)])
def test_yuv_to_rgb_blocks_are_bit_identical(monkeypatch, h: int, w: int, dy: int, dx: int) -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    u, v = (rng.integers(0, 256, (-(-h // dy), -(-w // dx)), dtype=np.uint8) for _ in range(2))
    whole = convert.yuv_to_rgb(y, u, v, bit_depth=8)
    monkeypatch.setattr(convert, "CHROMA_BLOCK_ROWS", 2)
    scratch: dict = {}
    for _ in range(2):  # the second call reuses the scratch arrays
        assert torch.equal(convert.yuv_to_rgb(y, u, v, bit_depth=8, scratch=scratch), whole)

"""SSIM / MS-SSIM: calibration against Wang's MATLAB code (run under Octave), properties, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qualitas.errors import MediaError
from qualitas.functional.filters import box_downsample, gaussian_kernel1d, matlab_round, separable_filter2d
from qualitas.metrics import get_metric
from qualitas.metrics.ssim import ms_ssim, ssim, ssim_downsample_factor

# Tolerances (relative), see docs/metrics.md. Against the reference code fed the same
# (unrounded) grayscale, float32 agrees to < 4e-6 and float64 to < 1e-7; 1e-4 leaves margin
# for other BLAS/conv back-ends while still catching any algorithmic slip (those are >= 1e-3).
TIGHT_REL = 1e-4
# Against MATLAB's usual call on uint8 images (rgb2gray rounds to integers): measured < 7e-4.
ISSUE_REL = 5e-3

CASE_NAMES = [
    "camera_jpeg10", "camera_blur2", "camera_noise10", "astronaut_jpeg20", "astronaut_blur1",
    "astronaut_noise5", "chelsea_jpeg30", "chelsea_noise15", "coffee_blur1.5",
    "astronaut700_jpeg50", "astronaut1080_noise8",
]  # fmt: skip


def _pair(recipes, ssim_reference, name: str, as_tensor):
    case = next(c for c in recipes.CASES if c.name == name)
    dist, ref = recipes.make_pair(case)
    want = ssim_reference["cases"][name]
    if recipes.digest(dist) != want["sha256_16"]["dist"] or recipes.digest(ref) != want["sha256_16"]["ref"]:
        # Only a different JPEG library or skimage image could change the recipe's pixels.
        pytest.skip(f"{name}: this machine's libraries build different pixels than the recorded ones")
    return as_tensor(dist), as_tensor(ref), want


def test_reference_cases_are_all_covered(recipes, ssim_reference) -> None:
    assert sorted(CASE_NAMES) == sorted(c.name for c in recipes.CASES) == sorted(ssim_reference["cases"])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_ssim_matches_wang_ssim_m(recipes, ssim_reference, as_tensor, name: str) -> None:
    dist, ref, want = _pair(recipes, ssim_reference, name, as_tensor)
    got = ssim(dist, ref).item()
    assert got == pytest.approx(want["ssim"], rel=TIGHT_REL)
    assert got == pytest.approx(want["ssim_uint8_gray"], rel=ISSUE_REL)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_ms_ssim_matches_wang_msssim_m(recipes, ssim_reference, as_tensor, name: str) -> None:
    dist, ref, want = _pair(recipes, ssim_reference, name, as_tensor)
    got = ms_ssim(dist, ref).item()
    assert got == pytest.approx(want["ms_ssim"], rel=TIGHT_REL)
    assert got == pytest.approx(want["ms_ssim_uint8_gray"], rel=ISSUE_REL)


def test_float64_is_closer_still(recipes, ssim_reference, as_tensor) -> None:
    dist, ref, want = _pair(recipes, ssim_reference, "coffee_blur1.5", as_tensor)
    assert ssim(dist, ref, dtype=torch.float64).item() == pytest.approx(want["ssim"], rel=1e-7)
    assert ms_ssim(dist, ref, dtype=torch.float64).item() == pytest.approx(want["ms_ssim"], rel=1e-7)


def test_downsampling_changes_the_score(recipes, ssim_reference, as_tensor) -> None:
    # Without ssim.m's automatic downsampling the 1080-line pair scores differently.
    dist, ref, want = _pair(recipes, ssim_reference, "astronaut1080_noise8", as_tensor)
    assert abs(ssim(dist, ref, downsample=False).item() - want["ssim"]) > 1e-2


def test_downsample_factor_rounds_half_away_from_zero() -> None:
    assert matlab_round(2.5) == 3 and matlab_round(1.5) == 2 and matlab_round(0.49) == 0
    assert ssim_downsample_factor(640, 900) == 3  # 2.5 -> 3 (Python's round would give 2)
    assert ssim_downsample_factor(383, 500) == 1
    assert ssim_downsample_factor(384, 500) == 2
    assert ssim_downsample_factor(1080, 1920) == 4
    assert ssim_downsample_factor(100, 100) == 1


def _matlab_box_downsample(img: np.ndarray, f: int) -> np.ndarray:
    """imfilter(img, ones(f)/f^2, 'symmetric', 'same') then img(1:f:end, 1:f:end), spelled out."""
    before = (f - 1) // 2
    padded = np.pad(img, ((before, f - 1 - before), (before, f - 1 - before)), mode="symmetric")
    h, w = img.shape
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = padded[i : i + f, j : j + f].mean()
    return out[::f, ::f]


@pytest.mark.parametrize("f", [2, 3, 4, 5])
@pytest.mark.parametrize("shape", [(13, 17), (16, 20), (9, 11)])
def test_box_downsample_matches_imfilter_symmetric(f: int, shape: tuple[int, int]) -> None:
    img = np.random.default_rng(f).random(shape)
    got = box_downsample(torch.from_numpy(img)[None, None], f)[0, 0].numpy()
    np.testing.assert_allclose(got, _matlab_box_downsample(img, f), atol=1e-12)


def test_gaussian_window_is_fspecial() -> None:
    g = gaussian_kernel1d(11, 1.5, dtype=torch.float64)
    x = np.arange(-5, 6)
    w2d = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(np.outer(g, g), w2d / w2d.sum(), atol=1e-15)
    # 'valid' separable filtering equals the 2-D correlation.
    img = torch.rand(1, 2, 20, 15, dtype=torch.float64)
    out = separable_filter2d(img, g)
    assert out.shape == (1, 2, 10, 5)
    direct = (img[0, 1, 3:14, 2:13] * torch.from_numpy(w2d / w2d.sum())).sum()
    assert out[0, 1, 3, 2].item() == pytest.approx(direct.item(), abs=1e-12)


def test_identity_gives_one() -> None:
    x = torch.rand(2, 3, 200, 190)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("metric", [ssim, ms_ssim])
def test_monotone_in_distortion_strength(recipes, metric) -> None:
    ref = recipes.reference_image(recipes.CASES[3])[:256, :256]  # astronaut crop

    def t(a):
        return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None] / 255

    for kind, strengths in (
        ("blur", [0.5, 1.0, 2.0, 4.0]),
        ("noise", [2, 5, 15, 40]),
        ("jpeg", [90, 50, 20, 5]),
    ):
        scores = [metric(t(recipes.distort(ref, kind, s)), t(ref)).item() for s in strengths]
        assert scores == sorted(scores, reverse=True), (kind, scores)
        assert scores[0] - scores[-1] > 0.05, (kind, scores)


@pytest.mark.parametrize("metric", [ssim, ms_ssim])
def test_batch_equals_per_item(metric) -> None:
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 3, 180, 200, generator=g)
    dist = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    batch = metric(dist, ref)
    single = torch.cat([metric(dist[i : i + 1], ref[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, rtol=1e-6, atol=0)


def test_too_small_inputs_raise_media_error() -> None:
    with pytest.raises(MediaError, match="ms_ssim needs images at least 176"):
        ms_ssim(torch.rand(1, 3, 175, 300), torch.rand(1, 3, 175, 300))
    with pytest.raises(MediaError, match="ssim needs images of at least 11x11"):
        ssim(torch.rand(1, 3, 1, 1), torch.rand(1, 3, 1, 1))
    with pytest.raises(ValueError, match="expected"):
        ssim(torch.rand(3, 20, 20), torch.rand(3, 20, 20))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", ["psnr", "psnr_y", "ssim", "ms_ssim"])
def test_cuda_matches_cpu(name: str) -> None:
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(2, 3, 240, 320, generator=g)
    dist = (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    cpu = get_metric(name, "cpu")(dist, ref)
    gpu = get_metric(name, "cuda")(dist, ref)
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-5, atol=0)


# --- Which SSIM a name means (issue 19) -------------------------------------------------------


@pytest.mark.parametrize("name", ["chelsea_jpeg30", "chelsea_noise15"])
def test_ssim_nodownsample_matches_wang_where_ssim_m_does_not_downsample(
    recipes, ssim_reference, as_tensor, name: str
) -> None:
    # chelsea is 300 lines: ssim.m's factor is 1, so ssim.m = ssim_index.m there.
    dist, ref, want = _pair(recipes, ssim_reference, name, as_tensor)
    assert ssim_downsample_factor(*ref.shape[-2:]) == 1
    assert get_metric("ssim_nodownsample")(dist, ref).item() == pytest.approx(want["ssim"], rel=TIGHT_REL)


def test_ssim_nodownsample_is_scikit_image_with_wangs_settings(recipes) -> None:
    """On a 512x512 pair (ssim.m's factor 2) ``ssim_nodownsample`` is full-resolution SSIM:
    scikit-image's independent implementation with the settings its docs give for Wang et
    al. agrees; ``ssim`` (downsampled) is another number."""
    from skimage.metrics import structural_similarity

    from qualitas.functional.color import rgb_to_gray_matlab

    ref = recipes.reference_image(recipes.CASES[3]).astype(np.float64)  # astronaut 512x512
    dist = np.clip(np.round(ref + np.random.default_rng(0).normal(0, 12, ref.shape)), 0, 255)
    d, r = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255 for a in (dist, ref))
    full = get_metric("ssim_nodownsample")(d, r).item()
    gray = [rgb_to_gray_matlab(x.double())[0, 0].numpy() * 255 for x in (d, r)]
    sk = structural_similarity(
        *gray, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert full == pytest.approx(sk, rel=1e-5)
    assert full == pytest.approx(ssim(d, r, downsample=False).item(), rel=1e-6)
    assert get_metric("ssim")(d, r).item() - full > 0.1  # downsampling hides most of the noise


def test_ms_ssim_on_qcif_needs_an_explicit_choice() -> None:
    """QCIF (176x144) is below MS-SSIM's five scales: a one-line error that names the
    minimum, as libvmaf's float_ms_ssim refuses it; fewer scales only when asked for."""
    from qualitas.metrics.ssim import MS_SSIM_WEIGHTS, ms_ssim_min_side

    assert ms_ssim_min_side() == 176 and ms_ssim_min_side(4) == 88
    g = torch.Generator().manual_seed(2)
    ref = torch.rand(1, 3, 144, 176, generator=g)
    dist = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    with pytest.raises(MediaError, match=r"at least 176 pixels .* got 176x144: use ssim") as err:
        get_metric("ms_ssim")(dist, ref)
    assert "\n" not in str(err.value) and "libvmaf" in str(err.value)
    four = ms_ssim(dist, ref, weights=MS_SSIM_WEIGHTS[:4])
    assert ms_ssim(ref, ref, weights=MS_SSIM_WEIGHTS[:4]).item() == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < four.item() < 0.99
    assert ms_ssim(torch.rand(1, 3, 176, 176), torch.rand(1, 3, 176, 176)).shape == (1,)


def test_ssim_nodownsample_engine_hooks_match_the_direct_call() -> None:
    """The scoring engine's per-stream hooks (shared gray, luma of YUV video) give the direct value."""
    g = torch.Generator().manual_seed(4)
    ref = torch.rand(2, 3, 400, 520, generator=g)  # ssim.m's factor would be 2
    dist = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    m = get_metric("ssim_nodownsample")
    direct = m(dist, ref)
    assert torch.allclose(m.score_refined(m.refine(m.prepare(dist)), m.refine(m.prepare(ref))), direct)
    assert torch.allclose(direct, ssim(dist, ref, downsample=False))
    assert not torch.allclose(direct, get_metric("ssim")(dist, ref), rtol=1e-3)
    luma = ref.mean(dim=1, keepdim=True)
    assert m.score_prepared(m.prepare_luma(luma), m.prepare_luma(luma)).tolist() == pytest.approx([1.0, 1.0])

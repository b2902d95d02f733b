"""PSNR / PSNR-Y: first-principles values, identity, monotonicity, batching, ffmpeg's Y PSNR."""

from __future__ import annotations

import math
import re
import subprocess

import numpy as np
import pytest
import torch

from qualitas.errors import ConfigError
from qualitas.functional.color import MATLAB_GRAY_COEFFS, rgb_to_y_bt601
from qualitas.metrics import get_metric, list_metrics
from qualitas.metrics.psnr import PSNR_CAP_DB, mse, psnr, psnr_y


def _base(seed: int = 0, shape=(2, 3, 40, 56)) -> torch.Tensor:
    # Samples in 0..200 so a positive offset never clips.
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 201, shape, generator=g).float() / 255.0


@pytest.mark.parametrize("d", [1, 3, 10, 25])
def test_psnr_of_constant_offset_is_20log10_255_over_d(d: int) -> None:
    ref = _base()
    dist = ref + d / 255.0
    expected = 20.0 * math.log10(255.0 / d)
    assert torch.allclose(psnr(dist, ref), torch.full((2,), expected, dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize("d", [2, 17])
def test_psnr_y_of_constant_rgb_offset(d: int) -> None:
    # Adding d/255 to R, G and B moves studio-range Y by (65.481+128.553+24.966)/255 * d/255.
    ref = _base(1)
    dist = ref + d / 255.0
    dy = 219.0 / 255.0 * d / 255.0
    expected = -20.0 * math.log10(dy)
    assert torch.allclose(psnr_y(dist, ref), torch.full((2,), expected, dtype=torch.float64), atol=1e-5)
    full = psnr_y(dist, ref, full_range=True)
    assert torch.allclose(full, torch.full((2,), 20 * math.log10(255 / d), dtype=torch.float64), atol=1e-4)


def test_identical_inputs_give_the_cap_or_inf() -> None:
    x = _base()
    assert psnr(x, x).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB]
    assert psnr_y(x, x).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB]
    assert torch.isinf(psnr(x, x, max_db=None)).all()
    assert get_metric("psnr")(x, x).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB]


def test_peak_from_bit_depth_is_equivalent() -> None:
    # 10-bit samples normalised by 1023 vs the same error measured on integers with peak 1023.
    g = torch.Generator().manual_seed(3)
    ref_int = torch.randint(0, 1000, (1, 3, 16, 16), generator=g).double()
    dist_int = ref_int + torch.randint(-4, 5, ref_int.shape, generator=g).double()
    on_unit = psnr(dist_int / 1023, ref_int / 1023)
    on_int = psnr(dist_int, ref_int, peak=1023.0)
    assert torch.allclose(on_unit, on_int, atol=1e-9)


def test_mse_over_all_channels() -> None:
    ref = torch.zeros(1, 3, 4, 4)
    dist = ref.clone()
    dist[:, 0] = 0.5  # error only in the red channel: mean over 3 channels is 0.25 / 3
    assert mse(dist, ref).item() == pytest.approx(0.25 / 3)


def test_psnr_decreases_with_noise() -> None:
    ref = _base(2, (1, 3, 64, 64))
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(ref.shape, generator=g)
    scores = [psnr((ref + s * noise).clamp(0, 1), ref).item() for s in (0.01, 0.03, 0.1, 0.3)]
    assert scores == sorted(scores, reverse=True) and scores[0] - scores[-1] > 15


def test_batch_equals_per_item() -> None:
    ref, dist = _base(5, (4, 3, 24, 24)), _base(6, (4, 3, 24, 24))
    batch = psnr_y(dist, ref)
    single = torch.cat([psnr_y(dist[i : i + 1], ref[i : i + 1]) for i in range(4)])
    assert torch.allclose(batch, single, atol=1e-9)


def test_luma_coefficients() -> None:
    # MATLAB rgb2gray documents 0.2989, 0.5870, 0.1140; rgb2ycbcr Y of white is 235.
    assert [round(c, 4) for c in MATLAB_GRAY_COEFFS] == [0.2989, 0.5870, 0.1140]
    white = torch.ones(1, 3, 1, 1)
    assert rgb_to_y_bt601(white).item() == pytest.approx(235 / 255)
    assert rgb_to_y_bt601(torch.zeros(1, 3, 1, 1)).item() == pytest.approx(16 / 255)


def test_psnr_y_matches_ffmpeg_psnr_on_the_y_plane(tmp_path, make_clip) -> None:
    """Frames decoded to 8-bit RGB: Y PSNR within 0.15 dB of ffmpeg's psnr filter on stored Y."""
    av = pytest.importorskip("av")
    from qualitas.metrics.vmaf import ffmpeg_path

    ref = make_clip("r.mp4", crf=10)
    dist = make_clip("d.mp4", crf=36)

    def decode(p) -> torch.Tensor:
        with av.open(str(p)) as c:
            arr = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255

    ours = psnr_y(decode(dist), decode(ref)).numpy()
    stats = tmp_path / "psnr.log"
    subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", str(dist), "-i", str(ref),
         "-lavfi", "[0:v][1:v]psnr=stats_file=psnr.log", "-f", "null", "-"],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    theirs = np.array(
        [float(re.search(r"psnr_y:(\S+)", ln).group(1)) for ln in stats.read_text().splitlines()]
    )
    assert len(theirs) == len(ours)
    assert np.abs(ours - theirs).max() < 0.15
    # The full-range alternative would be ~1.3 dB off: the reason for the studio-range choice.
    full = psnr_y(decode(dist), decode(ref), full_range=True).numpy()
    assert np.abs(full - theirs).min() > 1.0


def test_registry_lists_foundation_metrics_with_properties() -> None:
    infos = {m.name: m for m in list_metrics()}
    for name in ("psnr", "psnr_y", "ssim", "ms_ssim", "vmaf"):
        assert infos[name].full_reference and infos[name].higher_is_better
    assert infos["vmaf"].kind == "files" and infos["psnr"].kind == "frames"
    assert infos["psnr"].range == (0.0, PSNR_CAP_DB)
    with pytest.raises(ConfigError, match="did you mean 'psnr'"):
        get_metric("psnrr")

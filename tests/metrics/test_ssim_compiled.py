"""The opt-in compiled CPU SSIM kernel (``QUALITAS_COMPILE=1``) gives the eager kernel's numbers.

Slow: torch.compile builds the kernel once (~5 s with Inductor's disk cache warm, up to ~40 s
cold on a busy 2-core machine); the comparison itself takes milliseconds.
"""

from __future__ import annotations

import pytest
import torch

import qualitas.metrics.ssim as ssim_mod
from qualitas.functional.filters import gaussian_kernel1d


def _pair(b: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 255 * torch.rand(b, 1, h, w, generator=g)
    y = (0.7 * x + 80 * torch.rand(b, 1, h, w, generator=g)).clamp(0, 255)
    return x, y


def test_compile_is_off_by_default(monkeypatch) -> None:
    monkeypatch.delenv(ssim_mod.COMPILE_ENV, raising=False)
    assert not ssim_mod.compile_enabled()
    monkeypatch.setenv(ssim_mod.COMPILE_ENV, "0")
    assert not ssim_mod.compile_enabled()
    monkeypatch.setenv(ssim_mod.COMPILE_ENV, "1")
    assert ssim_mod.compile_enabled()


@pytest.mark.slow
def test_compiled_kernel_matches_eager(monkeypatch) -> None:
    win = gaussian_kernel1d(11, 1.5)
    # 5 images (a group of 4 and one more), heights that leave a short last tile, 2 sizes
    # (the kernel is compiled for dynamic shapes: no recompilation per size).
    cases = [_pair(5, 75, 61, 0), _pair(2, 40, 97, 1)]
    monkeypatch.setenv(ssim_mod.COMPILE_ENV, "0")
    eager = [ssim_mod.ssim_means(x, y, win) for x, y in cases]
    monkeypatch.setenv(ssim_mod.COMPILE_ENV, "1")
    compiled = [ssim_mod.ssim_means(x, y, win) for x, y in cases]
    # Float32 sums in another order: ~1e-6 apart on these noise images (the calibration
    # tests allow 1e-4 against Wang's code).
    for (s_e, c_e), (s_c, c_c) in zip(eager, compiled):
        torch.testing.assert_close(s_c, s_e, rtol=1e-5, atol=0)
        torch.testing.assert_close(c_c, c_e, rtol=1e-5, atol=0)
    assert "tile" in ssim_mod._compiled  # really went through torch.compile
    # Through the metrics too (MS-SSIM's five scales are five more sizes).
    x, y = _pair(2, 192, 200, 2)
    got = ssim_mod.ms_ssim_gray255(x, y)
    monkeypatch.setenv(ssim_mod.COMPILE_ENV, "0")
    torch.testing.assert_close(got, ssim_mod.ms_ssim_gray255(x, y), rtol=1e-5, atol=0)

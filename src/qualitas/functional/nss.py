"""Natural-scene-statistics building blocks shared by NIQE, BRISQUE and PIQE.

* MSCN coefficients (mean-subtracted, contrast-normalised luminance, Mittal et al. 2012):
  ``(I - mu) / (sigma + C)`` with ``mu``/``sigma`` from a 7x7 gaussian window
  (``fspecial('gaussian', 7, 7/6)``) on the image in ``[0, 255]``.
* Moment-matching fits of a generalised gaussian (GGD) and of an asymmetric generalised
  gaussian (AGGD), reproducing the LIVE reference code (``estimateggdparam.m`` and
  ``estimateaggdparam.m``): the shape is looked up on the grid ``0.2:0.001:10``.

All fits are batched: statistics are taken over the last dimension, every leading
dimension is kept. Compute in float64 to reproduce the MATLAB code.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import gamma as _gamma_fn

from qualitas.functional.color import rgb_to_gray_matlab
from qualitas.functional.filters import gaussian_kernel1d

# Shape grid of the LIVE code: gam = 0.2:0.001:10 (9801 values).
SHAPE_GRID = np.round(0.2 + 0.001 * np.arange(9801), 3)


@lru_cache(maxsize=1)
def _tables() -> dict[str, np.ndarray]:
    g = SHAPE_GRID
    g1, g2, g3 = _gamma_fn(1.0 / g), _gamma_fn(2.0 / g), _gamma_fn(3.0 / g)
    return {
        # AGGD: (E|x|)^2 / E[x^2] of a unit AGGD, increasing in the shape.
        "aggd_ratio": g2**2 / (g1 * g3),
        # GGD: E[x^2] / (E|x|)^2, decreasing in the shape.
        "ggd_ratio": g1 * g3 / g2**2,
        # std -> AGGD scale beta:  beta = std * sqrt(G(1/a) / G(3/a)).
        "beta_factor": np.sqrt(g1 / g3),
        # (beta_r - beta_l) -> AGGD mean: eta = (beta_r - beta_l) * G(2/a) / G(1/a).
        "mean_factor": g2 / g1,
    }


def _table(name: str, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(_tables()[name], dtype=like.dtype, device=like.device)


def _nearest_on_grid(values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Index of the grid value nearest to each of ``values`` (grid increasing).

    Equals MATLAB ``[~, i] = min((grid - v).^2)`` (first index on a tie); NaN maps to
    index 0 as MATLAB's ``min`` over an all-NaN vector does.
    """
    hi = torch.searchsorted(grid, values.contiguous()).clamp(1, grid.numel() - 1)
    lo = hi - 1
    pick_hi = (grid[hi] - values).abs() < (values - grid[lo]).abs()
    idx = torch.where(pick_hi, hi, lo)
    return torch.where(torch.isnan(values), torch.zeros_like(idx), idx)


def to_gray255(x: torch.Tensor, *, quantize: bool) -> torch.Tensor:
    """MATLAB ``rgb2gray`` of ``x`` (B,3,H,W) or (B,1,H,W) in [0,1] -> (B,H,W) float64 in [0,255].

    ``quantize=True`` rounds to 8-bit levels (half away from zero, saturating), which is what
    the reference code sees when it reads an 8-bit file: ``rgb2gray`` on ``uint8`` rounds.
    """
    x = x.to(torch.float64)
    gray = rgb_to_gray_matlab(x) if x.shape[1] == 3 else x
    gray = gray[:, 0] * 255.0
    if quantize:
        gray = torch.floor(gray.clamp(0.0, 255.0) + 0.5)
    return gray


def mscn(
    img: torch.Tensor,
    *,
    padding: str = "replicate",
    c: float = 1.0,
    window: int = 7,
    sigma: float = 7.0 / 6.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSCN coefficients of ``img`` (B,H,W) in [0,255] -> ``(mscn, local_std)``, both (B,H,W).

    ``padding``: "replicate" (``imfilter(..., 'replicate')``, NIQE/PIQE) or "zeros"
    (``filter2(..., 'same')``, BRISQUE). ``local_std = sqrt(|E_w[I^2] - E_w[I]^2|)``.
    """
    if padding not in ("replicate", "zeros"):
        raise ValueError(f"padding must be 'replicate' or 'zeros', got {padding!r}")
    taps = [float(v) for v in gaussian_kernel1d(window, sigma, dtype=torch.float64)]
    half = window // 2
    # Both moments go through one filter call.
    maps = torch.stack([img, img * img], dim=1)
    mode = "replicate" if padding == "replicate" else "constant"
    maps = F.pad(maps, (half, half, half, half), mode=mode)
    mu, mu2 = _filter_valid(maps, taps).unbind(dim=1)
    std = torch.sqrt((mu2 - mu * mu).abs())
    return (img - mu) / (std + c), std


def _filter_valid(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Separable 'valid' correlation of (..., H, W) with ``taps`` along H then W.

    Shifted in-place multiply-adds: on CPU in float64 this is about twice as fast as
    ``conv2d``, whose float64 path has no optimised kernel.
    """
    n = len(taps)
    h, w = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    y = x[..., 0:h, :] * taps[0]
    for i in range(1, n):
        y.add_(x[..., i : i + h, :], alpha=taps[i])
    z = y[..., 0:w] * taps[0]
    for i in range(1, n):
        z.add_(y[..., i : i + w], alpha=taps[i])
    return z


def fit_ggd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-mean GGD fit over the last dim of ``x`` (..., N) -> ``(shape, variance)``, each (...).

    As ``estimateggdparam.m``: ``rho = E[x^2] / E[|x|]^2`` matched on the shape grid;
    the second output is ``E[x^2]`` (BRISQUE's ``overallstd^2``).
    """
    sigma_sq = x.square().mean(dim=-1)
    rho = sigma_sq / x.abs().mean(dim=-1).square()
    ratio = _table("ggd_ratio", x)
    # The ratio decreases with the shape: search the reversed (increasing) table, then map
    # back; on a tie MATLAB keeps the first (smaller) shape, i.e. the larger reversed index.
    rev = ratio.flip(0)
    hi = torch.searchsorted(rev, rho.contiguous()).clamp(1, rev.numel() - 1)
    lo = hi - 1
    pick_lo = (rho - rev[lo]).abs() < (rev[hi] - rho).abs()
    idx_rev = torch.where(pick_lo, lo, hi)
    idx = rev.numel() - 1 - idx_rev
    idx = torch.where(torch.isnan(rho), torch.zeros_like(idx), idx)
    return _table_shape(idx, x), sigma_sq


def _table_shape(idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(SHAPE_GRID, dtype=like.dtype, device=like.device)[idx]


def fit_aggd_index(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AGGD fit over the last dim of ``x`` (..., N) -> ``(shape_index, left_std, right_std)``.

    As ``estimateaggdparam.m``: left/right std over the negative/positive samples (zeros
    count only in the overall moments), ``rhat`` normalised by the asymmetry and matched
    on the shape grid. ``shape_index`` indexes :data:`SHAPE_GRID`.
    """
    n = x.shape[-1]
    # Few passes and one temporary: the negative part xn = min(x, 0) gives the left moments,
    # the totals give the right ones (zeros count in neither side, only in n).
    xn = x.clamp(max=0.0)
    sq_total = torch.linalg.vecdot(x, x)
    sq_left = torch.linalg.vecdot(xn, xn)
    n_left = torch.count_nonzero(xn, dim=-1)
    n_right = torch.count_nonzero(x, dim=-1) - n_left
    abs_sum = x.sum(dim=-1) - 2.0 * xn.sum(dim=-1)  # |x| = x - 2 min(x, 0)
    # 0/0 -> NaN when a side is empty, as MATLAB's mean([]).
    left_std = torch.sqrt(sq_left / n_left)
    right_std = torch.sqrt((sq_total - sq_left) / n_right)
    gamma_hat = left_std / right_std
    r_hat = (abs_sum / n).square() / (sq_total / n)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    idx = _nearest_on_grid(r_hat_norm, _table("aggd_ratio", x))
    return idx, left_std, right_std


def fit_aggd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AGGD fit over the last dim of ``x`` (..., N) -> ``(shape, left_std, right_std)``."""
    idx, left_std, right_std = fit_aggd_index(x)
    return _table_shape(idx, x), left_std, right_std


def aggd_features(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """AGGD fit plus the derived quantities NIQE and BRISQUE use, each (...).

    Keys: ``shape``, ``left_std``, ``right_std``, ``beta_l``/``beta_r`` (AGGD scales) and
    ``mean`` (``(beta_r - beta_l) * G(2/a) / G(1/a)``).
    """
    idx, left_std, right_std = fit_aggd_index(x)
    beta_factor = _table("beta_factor", x)[idx]
    beta_l = left_std * beta_factor
    beta_r = right_std * beta_factor
    return {
        "shape": _table_shape(idx, x),
        "left_std": left_std,
        "right_std": right_std,
        "beta_l": beta_l,
        "beta_r": beta_r,
        "mean": (beta_r - beta_l) * _table("mean_factor", x)[idx],
    }

"""Log-Gabor filter banks and Kovesi's phase congruency, batched in torch.

Frequency-domain filters depend only on the image size, so each bank is built once per
(rows, cols) in float64 and cached; filtering is one batched FFT product.

* :func:`phase_congruency` reproduces ``phasecong2`` as shipped inside ``FeatureSIM.m``
  (Kovesi's code with FSIM's parameters: 4 scales, 4 orientations, minimum wavelength 6,
  multiplier 2, sigmaOnf 0.55, dThetaOnSigma 1.2, k = 2, the /1.7 noise rescaling).
* :func:`mad_gabor_bank` reproduces ``gaborconvolve`` of MAD's ``MAD_index.m`` (5 scales,
  4 orientations, wavelengths 3 * 3^s, sigmaOnf 0.55, dThetaOnSigma 1.5).
* :func:`vsi_log_gabor` reproduces ``logGabor`` of VSI's SDSP saliency.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from qualitas.functional.fr_filters import matlab_median


def _centered_range(n: int) -> np.ndarray:
    """Kovesi's normalised frequency axis of length n (range +/-0.5, odd/even aware)."""
    if n % 2:
        return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
    return np.arange(-n / 2, n / 2) / n


def _lowpass(rows: int, cols: int, cutoff: float, order: int) -> np.ndarray:
    """Kovesi's ``lowpassfilter``: Butterworth, frequency origin at the corners."""
    x, y = np.meshgrid(_centered_range(cols), _centered_range(rows))
    radius = np.sqrt(x**2 + y**2)
    return np.fft.ifftshift(1.0 / (1.0 + (radius / cutoff) ** (2 * order)))


@functools.lru_cache(maxsize=16)
def _pc_bank(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """FSIM's phasecong2 filters (norient, nscale, rows, cols) and per-orientation noise
    constants (EM_n, sum of An^2 estimate, sum of AiAj estimate)."""
    nscale, norient, min_wavelength, mult, sigma_onf, dtheta_on_sigma = 4, 4, 6, 2, 0.55, 1.2
    theta_sigma = math.pi / norient / dtheta_on_sigma
    x, y = np.meshgrid(_centered_range(cols), _centered_range(rows))
    radius = np.fft.ifftshift(np.sqrt(x**2 + y**2))
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius[0, 0] = 1.0
    sintheta, costheta = np.sin(theta), np.cos(theta)
    lp = _lowpass(rows, cols, 0.45, 15)
    log_gabor = []
    for s in range(nscale):
        fo = 1.0 / (min_wavelength * mult**s)
        lg = np.exp(-(np.log(radius / fo) ** 2) / (2 * math.log(sigma_onf) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)
    filters = np.empty((norient, nscale, rows, cols))
    em_n = np.empty(norient)
    sum_an2 = np.empty(norient)
    sum_aiaj = np.empty(norient)
    for o in range(norient):
        angl = o * math.pi / norient
        ds = sintheta * math.cos(angl) - costheta * math.sin(angl)
        dc = costheta * math.cos(angl) + sintheta * math.sin(angl)
        spread = np.exp(-(np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma**2))
        ifft_filts = []
        for s in range(nscale):
            filters[o, s] = log_gabor[s] * spread
            ifft_filts.append(np.real(np.fft.ifft2(filters[o, s])) * math.sqrt(rows * cols))
        em_n[o] = np.sum(filters[o, 0] ** 2)
        sum_an2[o] = sum(np.sum(f**2) for f in ifft_filts)
        sum_aiaj[o] = sum(
            np.sum(ifft_filts[i] * ifft_filts[j]) for i in range(nscale - 1) for j in range(i + 1, nscale)
        )
    return filters, em_n, sum_an2, sum_aiaj


def phase_congruency(x: torch.Tensor, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Phase congruency of gray images ``x`` (B,1,H,W) -> (B,1,H,W) in [0, 1], computed in
    ``dtype`` (float32 stays within ~1e-6 of float64 in FSIM).

    NaN where the image has no energy at all (a flat image), as in the reference.
    """
    b, _, rows, cols = x.shape
    filters_np, em_n_np, an2_np, aiaj_np = _pc_bank(rows, cols)
    dev = x.device
    filters = torch.from_numpy(filters_np).to(device=dev, dtype=dtype)  # (O, S, H, W)
    em_n = torch.from_numpy(em_n_np).to(device=dev, dtype=dtype).view(1, -1)
    sum_an2 = torch.from_numpy(an2_np).to(device=dev, dtype=dtype).view(1, -1)
    sum_aiaj = torch.from_numpy(aiaj_np).to(device=dev, dtype=dtype).view(1, -1)
    k, epsilon = 2.0, 1e-4

    imagefft = torch.fft.fft2(x[:, 0].to(dtype))  # (B, H, W)
    eo = torch.fft.ifft2(imagefft[:, None, None] * filters[None])  # (B, O, S, H, W)
    e, o_ = eo.real, eo.imag
    an = eo.abs()
    sum_an = an.sum(dim=2)  # (B, O, H, W)
    sum_e = e.sum(dim=2)
    sum_o = o_.sum(dim=2)
    x_energy = torch.sqrt(sum_e**2 + sum_o**2) + epsilon
    mean_e = (sum_e / x_energy).unsqueeze(2)
    mean_o = (sum_o / x_energy).unsqueeze(2)
    energy = (e * mean_e + o_ * mean_o - (e * mean_o - o_ * mean_e).abs()).sum(dim=2)  # (B, O, H, W)

    # Noise compensation from the smallest scale's median squared amplitude.
    median_e2n = matlab_median((an[:, :, 0] ** 2).flatten(2), dim=-1)  # (B, O)
    mean_e2n = -median_e2n / math.log(0.5)
    noise_power = mean_e2n / em_n
    est_noise_energy2 = 2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj
    tau = torch.sqrt(est_noise_energy2 / 2)
    est_noise_energy = tau * math.sqrt(math.pi / 2)
    est_noise_sigma = torch.sqrt((2 - math.pi / 2) * tau**2)
    t = (est_noise_energy + k * est_noise_sigma) / 1.7
    energy = (energy - t[..., None, None]).clamp_min(0)
    return (energy.sum(dim=1) / sum_an.sum(dim=1)).unsqueeze(1)


@functools.lru_cache(maxsize=16)
def _mad_bank(rows: int, cols: int) -> np.ndarray:
    """MAD's gaborconvolve filters (nscale=5, norient=4, rows, cols), origin at the corners."""
    nscale, norient, sigma_onf, dtheta_on_sigma = 5, 4, 0.55, 1.5
    wavelengths = [3 * 3**s for s in range(nscale)]
    # MATLAB: x = (-cols/2 : cols/2-1)/(cols/2): a colon range, so for odd sizes it starts
    # at a half-integer and still has `cols` samples.
    xr = (-cols / 2 + np.arange(cols)) / (cols / 2)
    yr = (-rows / 2 + np.arange(rows)) / (rows / 2)
    x, y = np.meshgrid(xr, yr)
    radius = np.sqrt(x**2 + y**2)
    # MATLAB round(rows/2 + 1) (half away from zero), 1-based -> 0-based.
    cr, cc = int(math.floor(rows / 2 + 1 + 0.5)) - 1, int(math.floor(cols / 2 + 1 + 0.5)) - 1
    radius[cr, cc] = 1.0
    log_radius = np.log(radius)
    theta = np.arctan2(-y, x)
    sintheta, costheta = np.sin(theta), np.cos(theta)
    theta_sigma = math.pi / norient / dtheta_on_sigma
    bank = np.empty((nscale, norient, rows, cols))
    for s in range(nscale):
        rfo = (1.0 / wavelengths[s]) / 0.5
        lg = np.exp((log_radius - math.log(rfo)) ** 2 / -(2 * math.log(sigma_onf) ** 2))
        lg[cr, cc] = 0.0
        for o in range(norient):
            angl = o * math.pi / norient
            ds = sintheta * math.cos(angl) - costheta * math.sin(angl)
            dc = costheta * math.cos(angl) + sintheta * math.sin(angl)
            spread = np.exp(-(np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma**2))
            bank[s, o] = np.fft.fftshift(lg * spread)
    return bank


def mad_gabor_bank(rows: int, cols: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """MAD's 20 log-Gabor filters in the FFT layout, (5, 4, rows, cols) float64."""
    return torch.from_numpy(_mad_bank(rows, cols)).to(device)


@functools.lru_cache(maxsize=4)
def _vsi_log_gabor(rows: int, cols: int, omega0: float, sigma_f: float) -> np.ndarray:
    u1 = (np.arange(1, cols + 1) - (cols // 2 + 1)) / (cols - cols % 2)
    u2 = (np.arange(1, rows + 1) - (rows // 2 + 1)) / (rows - rows % 2)
    u1, u2 = np.meshgrid(u1, u2)
    mask = (u1**2 + u2**2) <= 0.25
    u1 = np.fft.ifftshift(u1 * mask)
    u2 = np.fft.ifftshift(u2 * mask)
    radius = np.sqrt(u1**2 + u2**2)
    radius[0, 0] = 1.0
    with np.errstate(divide="ignore"):
        lg = np.exp(-(np.log(radius / omega0) ** 2) / (2 * sigma_f**2))
    lg[0, 0] = 0.0
    return lg


def vsi_log_gabor(
    rows: int, cols: int, omega0: float, sigma_f: float, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """VSI's SDSP log-Gabor transfer function (rows, cols), origin at the corners."""
    return torch.from_numpy(_vsi_log_gabor(rows, cols, omega0, sigma_f)).to(device)

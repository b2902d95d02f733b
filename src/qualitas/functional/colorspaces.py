"""Colour transforms used by the full-reference metrics (FSIMc, VSI, CIEDE2000).

Each metric's reference code fixes its own coefficients, so each gets its own function
instead of one "Lab" that would be right for only one of them. Inputs are ``(B,3,H,W)``
RGB; outputs ``(B,3,H,W)`` unless stated.
"""

from __future__ import annotations

import torch

# Linear sRGB -> XYZ with 7 digits (IEC 61966-2-1), as hard-coded in VSI's RGB2Lab.
_SRGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
# MATLAB's rgb2xyz/rgb2lab use the 4-digit matrix and whitepoint('d65') = [0.9504 1 1.0888].
_SRGB_TO_XYZ_MATLAB = (
    (0.4124, 0.3576, 0.1805),
    (0.2126, 0.7152, 0.0722),
    (0.0193, 0.1192, 0.9505),
)
D65_WHITE_MATLAB = (0.9504, 1.0, 1.0888)


def _mix(x: torch.Tensor, rows: tuple[tuple[float, float, float], ...]) -> torch.Tensor:
    """Per-pixel 3x3 matrix product: (..., 3, H, W) -> (..., len(rows), H, W)."""
    m = torch.tensor(rows, dtype=x.dtype, device=x.device)
    return torch.einsum("oc,...chw->...ohw", m, x)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """NTSC YIQ with the coefficients of FSIM's ``FeatureSIM.m`` (same scale as ``x``)."""
    return _mix(x, ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312)))


def rgb_to_lmn(x: torch.Tensor) -> torch.Tensor:
    """The opponent colour space of VSI's ``VSI.m`` (L, M, N; same scale as ``x``)."""
    return _mix(x, ((0.06, 0.63, 0.27), (0.30, 0.04, -0.35), (0.34, -0.60, 0.17)))


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB transfer function; ``x`` in [0, 1]."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4)


def _xyz_to_lab(xyz: torch.Tensor, white: tuple[float, float, float], *, cie_constants: bool) -> torch.Tensor:
    w = torch.tensor(white, dtype=xyz.dtype, device=xyz.device).view(1, 3, 1, 1)
    t = xyz / w
    if cie_constants:
        # VSI's RGB2Lab: epsilon 0.008856 and kappa 903.3 as printed in the CIE standard.
        eps, kappa = 0.008856, 903.3
        f = torch.where(t > eps, t.clamp_min(0) ** (1.0 / 3.0), (kappa * t + 16.0) / 116.0)
    else:
        # Exact rational constants, as MATLAB/Octave rgb2lab and scikit-image.
        eps = (6.0 / 29.0) ** 3
        f = torch.where(t > eps, t.clamp_min(0) ** (1.0 / 3.0), t / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(dim=1)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* of sRGB ``x`` in [0, 1] as MATLAB ``rgb2lab`` (D65, its 4-digit constants)."""
    return _xyz_to_lab(_mix(srgb_to_linear(x), _SRGB_TO_XYZ_MATLAB), D65_WHITE_MATLAB, cie_constants=False)


def rgb_to_lab_vsi(x: torch.Tensor) -> torch.Tensor:
    """L*a*b* exactly as VSI's ``RGB2Lab``: sRGB D65 matrix but the D50 white
    (0.9642, 1, 0.8251) and the CIE's rounded epsilon/kappa. ``x`` in [0, 1]."""
    return _xyz_to_lab(_mix(srgb_to_linear(x), _SRGB_TO_XYZ), (0.9642, 1.0, 0.8251), cie_constants=True)

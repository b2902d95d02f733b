"""Colour conversions on RGB tensors in ``[0, 1]``.

Two luma definitions are used by the metrics, and they are deliberately different:

* :func:`rgb_to_gray_matlab` reproduces MATLAB's ``rgb2gray`` (the grayscale that Wang et
  al.'s SSIM and MS-SSIM reference code is run on).
* :func:`rgb_to_y_bt601` reproduces MATLAB's ``rgb2ycbcr`` luma (BT.601, limited range),
  which is also the Y plane that video codecs store, so PSNR on it matches ffmpeg's
  ``psnr`` filter on the Y plane of 8-bit BT.601 video.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: torch is imported in the functions that use it
    import torch

# MATLAB's rgb2gray takes the first row of the inverse of the NTSC YIQ -> RGB matrix
# (documented as 0.2989, 0.5870, 0.1140); computing it the same way keeps all digits.
_YIQ_TO_RGB = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
MATLAB_GRAY_COEFFS: tuple[float, float, float] = tuple(float(c) for c in np.linalg.inv(_YIQ_TO_RGB)[0])

# ITU-R BT.601 luma in studio (limited) range, as MATLAB rgb2ycbcr: Y in [16, 235] / 255.
BT601_Y_COEFFS: tuple[float, float, float] = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
BT601_Y_OFFSET = 16.0 / 255.0
# Full-range BT.601 (JPEG/JFIF) luma weights.
BT601_FULL_COEFFS: tuple[float, float, float] = (0.299, 0.587, 0.114)


def _check_rgb(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an RGB batch (B,3,H,W), got {tuple(x.shape)}")


def _weighted_sum(x: torch.Tensor, coeffs: tuple[float, float, float], scale: float = 1.0) -> torch.Tensor:
    # Channel by channel with in-place adds: no (B,3,H,W) temporary (the cost at 1080p+).
    out = x[:, 0:1] * (coeffs[0] * scale)
    out.add_(x[:, 1:2], alpha=coeffs[1] * scale)
    return out.add_(x[:, 2:3], alpha=coeffs[2] * scale)


def rgb_to_gray_matlab(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """MATLAB ``rgb2gray`` of ``x`` (B,3,H,W) -> (B,1,H,W), multiplied by ``scale``.

    No rounding: MATLAB rounds when its input is ``uint8``; here the input may come from
    10/16-bit media, so the exact weighted sum is kept (see docs/metrics.md for the effect).
    """
    _check_rgb(x)
    return _weighted_sum(x, MATLAB_GRAY_COEFFS, scale)


def rgb_to_y_bt601(x: torch.Tensor, *, full_range: bool = False) -> torch.Tensor:
    """BT.601 luma of ``x`` (B,3,H,W) in ``[0, 1]`` -> (B,1,H,W) in ``[0, 1]``.

    ``full_range=False`` (default) gives studio-range Y = 16/255 + (65.481 R + 128.553 G +
    24.966 B)/255 (MATLAB ``rgb2ycbcr``, the Y that 8-bit BT.601 video stores);
    ``full_range=True`` gives 0.299 R + 0.587 G + 0.114 B.
    """
    _check_rgb(x)
    if full_range:
        return _weighted_sum(x, BT601_FULL_COEFFS)
    return _weighted_sum(x, BT601_Y_COEFFS) + BT601_Y_OFFSET

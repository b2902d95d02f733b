"""Pure tensor maths shared by metrics and losses (filters, colour conversions)."""

from qualitas.functional.color import rgb_to_gray_matlab, rgb_to_y_bt601
from qualitas.functional.filters import (
    box_downsample,
    gaussian_kernel1d,
    matlab_round,
    pad_symmetric,
    separable_filter2d,
)

__all__ = [
    "box_downsample",
    "gaussian_kernel1d",
    "matlab_round",
    "pad_symmetric",
    "rgb_to_gray_matlab",
    "rgb_to_y_bt601",
    "separable_filter2d",
]

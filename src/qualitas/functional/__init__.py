"""Pure tensor maths shared by metrics and losses (filters, colour conversions).

Names are imported from their submodules on first use (PEP 562): the numba kernels of
:mod:`qualitas.functional.yuv_kernels` are imported without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "rgb_to_gray_matlab": "color",
    "rgb_to_y_bt601": "color",
    "box_downsample": "filters",
    "gaussian_kernel1d": "filters",
    "matlab_round": "filters",
    "pad_symmetric": "filters",
    "separable_filter2d": "filters",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qualitas.functional' has no attribute {name!r}")
    return getattr(importlib.import_module(f"qualitas.functional.{module}"), name)


__all__ = [
    "box_downsample",
    "gaussian_kernel1d",
    "matlab_round",
    "pad_symmetric",
    "rgb_to_gray_matlab",
    "rgb_to_y_bt601",
    "separable_filter2d",
]

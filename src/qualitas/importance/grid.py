"""Macroblock grids: moved to :mod:`qualitas.functional.blocks` (losses and evaluation use
them too); this module keeps the old import path."""

from __future__ import annotations

from qualitas.functional.blocks import (  # noqa: F401
    NORMS,
    block_sum,
    blocks_to_pixels,
    dequantise,
    dilate,
    grid_shape,
    normalise,
    parse_select,
    paste,
    quantise,
    select_random,
    select_topk,
)

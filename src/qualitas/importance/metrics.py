"""Predictor evaluation: moved to :mod:`qualitas.evaluation.importance`; old import path."""

from __future__ import annotations

from qualitas.evaluation.importance import (  # noqa: F401
    grid_scores,
    item_figures,
    spearman_per_frame,
    topk_iou,
)

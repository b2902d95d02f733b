"""Evaluation: agreement figures between predictions and MOS, aggregation, plots.

``evaluate(pred, mos)`` -> SROCC/KROCC/PLCC/RMSE raw and after the VQEG logistic fit;
``aggregate_by_key`` for per-video means; ``plots.scatter`` / ``plots.training_curves``.
"""

from __future__ import annotations

from qualitas.evaluation import plots
from qualitas.evaluation.correlation import (
    LogisticFit,
    aggregate_by_key,
    evaluate,
    fit_logistic,
    krocc,
    logistic4,
    plcc,
    rmse,
    srocc,
)

__all__ = [
    "LogisticFit",
    "aggregate_by_key",
    "evaluate",
    "fit_logistic",
    "krocc",
    "logistic4",
    "plcc",
    "plots",
    "rmse",
    "srocc",
]

"""Image and video quality metrics.

Every metric module is imported explicitly below so that its ``@METRICS.register`` runs;
``get_metric`` and ``list_metrics`` read the registry.
"""

from __future__ import annotations

from typing import Any

import torch

from qualitas.metrics.base import METRICS, Metric, MetricInfo

# --- metric modules: one explicit import line each, alphabetical ----------------------------
# (isort is off here so that each engineer's line stays a separate, conflict-free line)
# isort: off
from qualitas.metrics import brisque  # noqa: F401
from qualitas.metrics import ciede2000  # noqa: F401
from qualitas.metrics import cw_ssim  # noqa: F401
from qualitas.metrics import fsim  # noqa: F401
from qualitas.metrics import gmsd  # noqa: F401
from qualitas.metrics import mad  # noqa: F401
from qualitas.metrics import niqe  # noqa: F401
from qualitas.metrics import nlpd  # noqa: F401
from qualitas.metrics import piqe  # noqa: F401
from qualitas.metrics import psnr  # noqa: F401
from qualitas.metrics import ssim  # noqa: F401
from qualitas.metrics import vif  # noqa: F401
from qualitas.metrics import vifp  # noqa: F401
from qualitas.metrics import vmaf  # noqa: F401
from qualitas.metrics import vsi  # noqa: F401
# isort: on
# --- end of metric modules ------------------------------------------------------------------


def get_metric(name: str, device: str | torch.device = "cpu", **kwargs: Any) -> Metric:
    """Instantiate the registered metric ``name`` on ``device`` (ConfigError if unknown);
    ``kwargs`` are the metric's own options (e.g. VMAF's ``model`` and ``threads``)."""
    return METRICS.get(name)(device=device, **kwargs)


def list_metrics() -> list[MetricInfo]:
    """Properties of every registered metric, sorted by name."""
    return [METRICS.get(name).info for name in METRICS.names()]


__all__ = ["METRICS", "Metric", "MetricInfo", "get_metric", "list_metrics"]

"""Image and video quality metrics.

Every metric is declared below by one explicit line, name -> the module that defines and
registers it; the module is imported when the metric is first asked for (``get_metric``,
``METRICS.get``), so a run pays only for the metrics it uses (``qualitas score --metric
psnr,ssim`` of a video pair imports neither torch nor scipy). ``list_metrics`` imports them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qualitas.metrics.base import METRICS, Metric, MetricInfo

if TYPE_CHECKING:  # annotations only
    import torch

# --- metric declarations: one line each, alphabetical ----------------------------------------
# (isort is off here so that each engineer's line stays a separate, conflict-free line)
# isort: off
METRICS.declare("brisque", "qualitas.metrics.brisque")
METRICS.declare("ciede2000", "qualitas.metrics.ciede2000")
METRICS.declare("cw_ssim", "qualitas.metrics.cw_ssim")
METRICS.declare("fsim", "qualitas.metrics.fsim")
METRICS.declare("fsimc", "qualitas.metrics.fsim")
METRICS.declare("gmsd", "qualitas.metrics.gmsd")
METRICS.declare("mad", "qualitas.metrics.mad")
METRICS.declare("ms_ssim", "qualitas.metrics.ssim")
METRICS.declare("niqe", "qualitas.metrics.niqe")
METRICS.declare("nlpd", "qualitas.metrics.nlpd")
METRICS.declare("piqe", "qualitas.metrics.piqe")
METRICS.declare("psnr", "qualitas.metrics.psnr")
METRICS.declare("psnr_y", "qualitas.metrics.psnr")
METRICS.declare("ssim", "qualitas.metrics.ssim")
METRICS.declare("ssim_nodownsample", "qualitas.metrics.ssim")
METRICS.declare("vif", "qualitas.metrics.vif")
METRICS.declare("vifp", "qualitas.metrics.vifp")
METRICS.declare("vmaf", "qualitas.metrics.vmaf")
METRICS.declare("vsi", "qualitas.metrics.vsi")
# isort: on
# --- end of metric declarations --------------------------------------------------------------


def get_metric(name: str, device: str | torch.device = "cpu", **kwargs: Any) -> Metric:
    """Instantiate the registered metric ``name`` on ``device`` (ConfigError if unknown);
    ``kwargs`` are the metric's own options (e.g. VMAF's ``model`` and ``threads``)."""
    return METRICS.get(name)(device=device, **kwargs)


def list_metrics() -> list[MetricInfo]:
    """Properties of every registered metric, sorted by name."""
    return [METRICS.get(name).info for name in METRICS.names()]


__all__ = ["METRICS", "Metric", "MetricInfo", "get_metric", "list_metrics"]

"""Agreement between predictions and MOS: SROCC, KROCC, PLCC, RMSE, raw and after the
VQEG 4-parameter logistic mapping.

VQEG (Final report, Phase II FR-TV, 2003) fits a monotonic logistic from objective
scores ``x`` to MOS before computing PLCC/RMSE, so a model is not penalised for a
non-linear but monotonic scale:

    f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

Fitted with ``scipy.optimize.curve_fit`` from ``b1 = max(MOS)``, ``b2 = min(MOS)``,
``b3 = mean(x)``, ``b4 = std(x)`` (``b1``/``b2`` swapped when ``x`` and MOS are negatively
correlated, e.g. a distortion measure). When the fit fails (no convergence, fewer than
five points, non-finite result, or worse than a straight line), a least-squares linear
map is used instead; ``LogisticFit.method`` says which.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from qualitas.errors import UsageError

ArrayLike = Sequence[float] | np.ndarray


def as_array(x: object, name: str = "values") -> np.ndarray:
    """1-D float64 array from a list, numpy array or torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise UsageError(f"{name}: expected a 1-D sequence of scores, got shape {arr.shape}")
    return arr


def as_pair(pred: object, mos: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(pred, mos)`` arrays: same length, finite MOS (predictions may be NaN)."""
    p, m = as_array(pred, "pred"), as_array(mos, "mos")
    if p.shape != m.shape:
        raise UsageError(f"pred and mos differ in length: {p.size} vs {m.size}")
    if not np.isfinite(m).all():
        raise UsageError(f"mos has {int((~np.isfinite(m)).sum())} non-finite value(s)")
    return p, m


def _defined(p: np.ndarray, m: np.ndarray) -> bool:
    """Correlations need two points, finite predictions and some spread in both."""
    return p.size >= 2 and bool(np.isfinite(p).all()) and np.ptp(p) > 0 and np.ptp(m) > 0


def srocc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Spearman rank-order correlation (``scipy.stats.spearmanr``); NaN if undefined."""
    p, m = as_pair(pred, mos)
    return float(stats.spearmanr(p, m).statistic) if _defined(p, m) else float("nan")


def krocc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Kendall rank-order correlation, tau-b (``scipy.stats.kendalltau``); NaN if undefined."""
    p, m = as_pair(pred, mos)
    return float(stats.kendalltau(p, m).statistic) if _defined(p, m) else float("nan")


def plcc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Pearson linear correlation (``scipy.stats.pearsonr``); NaN if undefined."""
    p, m = as_pair(pred, mos)
    return float(stats.pearsonr(p, m).statistic) if _defined(p, m) else float("nan")


def rmse(pred: ArrayLike, mos: ArrayLike) -> float:
    """Root mean squared error ``sqrt(mean((pred - mos)^2))``."""
    p, m = as_pair(pred, mos)
    return float(np.sqrt(np.mean((p - m) ** 2))) if p.size else float("nan")


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3)/|b4|)) + b2``."""
    # expit(z) = 1 / (1 + exp(-z)) without overflow for large |z|.
    return (b1 - b2) * special.expit((np.asarray(x, dtype=np.float64) - b3) / abs(b4)) + b2


@dataclass(frozen=True)
class LogisticFit:
    """A fitted map from predictions to the MOS scale.

    ``method``: ``"logistic"`` (``params = (b1, b2, b3, b4)``), ``"linear"``
    (``params = (slope, intercept)``) or ``"constant"`` (``params = (mean MOS,)``, when the
    predictions have no spread).
    """

    method: str
    params: tuple[float, ...]

    def __call__(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.method == "logistic":
            return logistic4(x, *self.params)
        if self.method == "linear":
            return self.params[0] * x + self.params[1]
        return np.full_like(x, self.params[0])

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "params": list(self.params)}


def _linear_fit(p: np.ndarray, m: np.ndarray) -> LogisticFit:
    if p.size < 2 or np.ptp(p) == 0:
        return LogisticFit("constant", (float(np.mean(m)) if m.size else float("nan"),))
    slope, intercept = np.polyfit(p, m, 1)
    return LogisticFit("linear", (float(slope), float(intercept)))


def fit_logistic(
    pred: ArrayLike, mos: ArrayLike, *, maxfev: int = 20000, min_gain: float = 0.0
) -> LogisticFit:
    """Fit the VQEG 4-parameter logistic ``pred -> mos``, falling back to a linear map.

    ``min_gain``: keep the logistic only if its mean squared error is at least this fraction
    below the line's (a near-linear logistic has huge, cancelling parameters)."""
    p, m = as_pair(pred, mos)
    if not np.isfinite(p).all():
        raise UsageError(f"pred has {int((~np.isfinite(p)).sum())} non-finite value(s)")
    linear = _linear_fit(p, m)
    if p.size < 5 or linear.method == "constant" or np.ptp(m) == 0:
        return linear
    sign = 1.0 if linear.params[0] >= 0 else -1.0
    hi, lo = float(m.max()), float(m.min())
    b1, b2 = (hi, lo) if sign > 0 else (lo, hi)
    p0 = [b1, b2, float(np.mean(p)), float(np.std(p)) or 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(logistic4, p, m, p0=p0, maxfev=maxfev)
    except (RuntimeError, ValueError, TypeError, optimize.OptimizeWarning):
        return linear
    fit = LogisticFit("logistic", tuple(float(v) for v in params))
    fitted = fit(p)
    if not np.isfinite(fitted).all():
        return linear
    # A converged 4-parameter logistic is never worse than a line in least squares; if it
    # is, curve_fit stopped in a poor local minimum.
    mse_line = np.mean((linear(p) - m) ** 2)
    if np.mean((fitted - m) ** 2) > mse_line * (1 + 1e-9) + 1e-12:
        return linear
    if min_gain > 0 and np.mean((fitted - m) ** 2) > (1.0 - min_gain) * mse_line:
        return linear
    return fit


def evaluate(pred: ArrayLike, mos: ArrayLike, *, fit: bool = True) -> dict[str, float]:
    """All agreement figures as a flat ``{name: float}`` dict.

    Keys: ``n``, ``srocc``, ``krocc``, ``plcc``, ``rmse`` on the raw predictions and, with
    ``fit=True``, ``srocc_fitted``, ``krocc_fitted``, ``plcc_fitted``, ``rmse_fitted`` after
    :func:`fit_logistic` (rank figures only change sign if the map is decreasing).
    Non-finite predictions (a diverged model) give NaN figures rather than an error;
    non-finite MOS or mismatched lengths raise ``UsageError``.
    """
    p, m = as_pair(pred, mos)
    out = {
        "n": float(p.size),
        "srocc": srocc(p, m),
        "krocc": krocc(p, m),
        "plcc": plcc(p, m),
        "rmse": rmse(p, m),
    }
    if fit:
        if np.isfinite(p).all() and p.size:
            mapped = fit_logistic(p, m)(p)
            out.update(
                srocc_fitted=srocc(mapped, m),
                krocc_fitted=krocc(mapped, m),
                plcc_fitted=plcc(mapped, m),
                rmse_fitted=rmse(mapped, m),
            )
        else:
            out.update(
                srocc_fitted=float("nan"),
                krocc_fitted=float("nan"),
                plcc_fitted=float("nan"),
                rmse_fitted=float("nan"),
            )
    return out


def aggregate_by_key(keys: Sequence[Hashable], *columns: ArrayLike) -> tuple[list[Hashable], ...]:
    """Mean of each column per key, keys in order of first appearance.

    E.g. per-video scores from clip predictions:
    ``videos, pred, mos = aggregate_by_key(video_ids, clip_pred, clip_mos)``.
    Returns ``(unique_keys, mean_column_1, ...)`` with numpy arrays for the columns.
    """
    cols = [as_array(c, f"column {i}") for i, c in enumerate(columns)]
    for i, c in enumerate(cols):
        if c.size != len(keys):
            raise UsageError(f"column {i} has {c.size} values for {len(keys)} keys")
    index: dict[Hashable, int] = {}
    for k in keys:
        index.setdefault(k, len(index))
    ids = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
    counts = np.bincount(ids, minlength=len(index))
    means = [np.bincount(ids, weights=c, minlength=len(index)) / np.maximum(counts, 1) for c in cols]
    return (list(index), *means)

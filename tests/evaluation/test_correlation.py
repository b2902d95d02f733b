"""Correlation figures vs scipy and by hand; logistic fit recovers known parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from qualitas.errors import UsageError
from qualitas.evaluation import aggregate_by_key, evaluate, fit_logistic, krocc, logistic4, plcc, rmse, srocc


def test_small_example_by_hand():
    pred, mos = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    # rank differences d = [0, 1, -1, 0]: 1 - 6 * 2 / (4 * 15)
    assert srocc(pred, mos) == pytest.approx(0.8)
    # 5 concordant, 1 discordant pair of 6
    assert krocc(pred, mos) == pytest.approx(4 / 6)
    # centred [-1.5, -.5, .5, 1.5] and [-1.5, .5, -.5, 1.5]: 4 / 5
    assert plcc(pred, mos) == pytest.approx(0.8)
    assert rmse(pred, mos) == pytest.approx(math.sqrt(2 / 4))


def test_match_scipy_with_ties_and_tensor_input():
    rng = np.random.default_rng(1)
    mos = rng.integers(1, 6, 50).astype(float)  # ties, like 5-point MOS
    pred = mos + rng.normal(0, 1.0, 50)
    for ours, ref in [
        (srocc, stats.spearmanr(pred, mos).statistic),
        (krocc, stats.kendalltau(pred, mos).statistic),
        (plcc, stats.pearsonr(pred, mos).statistic),
    ]:
        assert ours(torch.tensor(pred), mos) == pytest.approx(ref, abs=1e-12)


def test_logistic_fit_recovers_known_parameters():
    x = np.linspace(-3, 12, 60)
    true = (4.5, 1.2, 5.0, 1.7)
    fit = fit_logistic(x, logistic4(x, *true))
    assert fit.method == "logistic"
    b1, b2, b3, b4 = fit.params
    np.testing.assert_allclose([b1, b2, b3, abs(b4)], true, rtol=1e-4)


def test_logistic_fit_decreasing_relation():
    x = np.linspace(0, 60, 40)  # e.g. a distortion measure: higher is worse
    y = logistic4(x, 1.0, 5.0, 30.0, 6.0)
    fit = fit_logistic(x, y)
    assert fit.method == "logistic"
    np.testing.assert_allclose(fit(x), y, atol=1e-6)
    figures = evaluate(x, y)
    assert figures["srocc"] == pytest.approx(-1.0)
    assert figures["plcc_fitted"] == pytest.approx(1.0) and figures["rmse_fitted"] == pytest.approx(
        0, abs=1e-5
    )


def test_fallbacks():
    # too few points for four parameters -> straight line
    fit = fit_logistic([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.5])
    assert fit.method == "linear" and fit.params[0] > 0
    # no spread in predictions -> constant map, undefined correlations
    fit = fit_logistic([2.0] * 6, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert fit.method == "constant" and fit.params == (3.5,)
    figures = evaluate([2.0] * 6, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert math.isnan(figures["srocc"]) and figures["rmse_fitted"] == pytest.approx(math.sqrt(17.5 / 6))


def test_fit_is_never_worse_than_linear():
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.normal(size=30)
        y = 2 * x + rng.normal(0, 2, 30)  # noisy, nearly linear: logistic may be ill-posed
        fit = fit_logistic(x, y)
        slope, intercept = np.polyfit(x, y, 1)
        assert np.mean((fit(x) - y) ** 2) <= np.mean((slope * x + intercept - y) ** 2) + 1e-9


def test_evaluate_keys_and_bad_input():
    rng = np.random.default_rng(0)
    mos = rng.uniform(1, 5, 40)
    pred = mos**2 + rng.normal(0, 0.3, 40)  # monotonic, non-linear: fitted PLCC is higher
    figures = evaluate(pred, mos)
    assert set(figures) == {
        "n",
        "srocc",
        "krocc",
        "plcc",
        "rmse",
        "srocc_fitted",
        "krocc_fitted",
        "plcc_fitted",
        "rmse_fitted",
    }
    assert figures["n"] == 40 and figures["plcc_fitted"] > figures["plcc"]
    assert figures["srocc_fitted"] == pytest.approx(figures["srocc"])
    nan_pred = pred.copy()
    nan_pred[3] = np.nan  # a diverged model: figures are NaN, not a crash
    assert all(math.isnan(v) for k, v in evaluate(nan_pred, mos).items() if k != "n")
    with pytest.raises(UsageError, match="differ in length"):
        evaluate([1.0, 2.0], [1.0])
    with pytest.raises(UsageError, match="non-finite"):
        evaluate([1.0, 2.0], [1.0, float("nan")])


def test_aggregate_by_key():
    keys, pred, mos = aggregate_by_key(["b", "a", "b", "c", "a"], [1.0, 2.0, 3.0, 4.0, 6.0], [5, 1, 5, 2, 1])
    assert keys == ["b", "a", "c"]
    np.testing.assert_allclose(pred, [2.0, 4.0, 4.0])
    np.testing.assert_allclose(mos, [5.0, 1.0, 2.0])
    with pytest.raises(UsageError, match="3 values for 2 keys"):
        aggregate_by_key(["a", "b"], [1.0, 2.0, 3.0])

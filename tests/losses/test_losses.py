"""Every loss against values worked out by hand; build_loss from config; gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qualitas.errors import ConfigError
from qualitas.losses import LOSSES, WeightedSum, build_loss, emd_loss, norm_in_norm_loss

t = torch.tensor


def close(a: torch.Tensor, b: float, tol: float = 1e-6) -> None:
    value = float(torch.as_tensor(a).detach())
    assert abs(value - b) < tol, (value, b)


# --- regression -------------------------------------------------------------------------
# pred = [1, 2, 4], mos = [2, 2, 2] -> errors [-1, 0, 2]


def test_l1_mse_smooth_l1_by_hand():
    pred, mos = t([1.0, 2.0, 4.0]), t([2.0, 2.0, 2.0])
    close(build_loss("l1")(pred, mos), (1 + 0 + 2) / 3)
    close(build_loss("mse")(pred, mos), (1 + 0 + 4) / 3)
    # beta=1: |e| >= 1 -> |e| - 0.5: 0.5, 0, 1.5
    close(build_loss("smooth_l1")(pred, mos), (0.5 + 0 + 1.5) / 3)
    # beta=4: all |e| < 4 -> 0.5 e^2 / 4: 0.125, 0, 0.5
    close(build_loss({"name": "smooth_l1", "beta": 4})(pred, mos), (0.125 + 0 + 0.5) / 3)


# pred = [1, 2, 3], mos = [1, 3, 2]; pairs (i<j): dt = t_i - t_j, dp = p_i - p_j
#   (0,1): dt=-2 dp=-1 -> relu(m - (-1)(-1)) = relu(m - 1)
#   (0,2): dt=-1 dp=-2 -> relu(m - 2)
#   (1,2): dt=+1 dp=-1 -> relu(m + 1)          (the mis-ordered pair)
# L1 = (0 + 1 + 1) / 3


@pytest.mark.parametrize(
    "kwargs,rank",
    [
        ({}, (0 + 0 + 1) / 3),  # margin 0: only the mis-ordered pair costs
        ({"margin": 1.5}, (0.5 + 0 + 2.5) / 3),
        ({"hard_thresh": 1.5}, 0.0),  # only pair (0,1) has |dt| > 1.5, and it is ordered
        ({"hard_thresh": 1.5, "margin": 1.5}, 0.5 / 1),  # normalised by the 1 qualifying pair
        ({"hard_thresh": 5.0}, 0.0),  # no pair qualifies -> L1 alone
        ({"rank_weight": 3.0}, 3 * (1 / 3)),
    ],
)
def test_l1_rank_by_hand(kwargs, rank):
    loss = build_loss({"name": "l1_rank", **kwargs})
    close(loss(t([1.0, 2.0, 3.0]), t([1.0, 3.0, 2.0])), 2 / 3 + rank)


def test_margin_ranking_by_hand_and_vs_torch():
    better, worse = t([2.0, 1.0, 0.0]), t([1.0, 1.2, 0.0])
    # margin 0.5: relu(0.5 - 1) = 0, relu(0.5 + 0.2) = 0.7, relu(0.5 - 0) = 0.5
    loss = build_loss({"name": "margin_ranking", "margin": 0.5})
    assert loss.input_kind == "pair"
    close(loss(better, worse), (0 + 0.7 + 0.5) / 3)
    close(loss(better, worse), F.margin_ranking_loss(better, worse, torch.ones(3), margin=0.5))


# --- distribution -----------------------------------------------------------------------


def test_emd_by_hand():
    pred = t([[0.5, 0.5, 0.0]])
    votes = t([[0.0, 3.0, 3.0]])  # counts: normalised to [0, .5, .5]
    # CDFs [0.5, 1, 1] and [0, 0.5, 1] -> |diff| = [0.5, 0.5, 0]
    close(emd_loss(pred, votes, r=2), math.sqrt((0.25 + 0.25 + 0) / 3))
    close(emd_loss(pred, votes, r=1), (0.5 + 0.5 + 0) / 3)
    # batch mean of per-item EMD; a point mass at the other end: CDF diff [1, 1, 0]
    pred2 = t([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    votes2 = t([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    close(build_loss("emd")(pred2, votes2), (math.sqrt(0.5 / 3) + math.sqrt(2 / 3)) / 2)


def test_emd_identical_is_zero_with_finite_gradient():
    logits = torch.zeros(2, 5, requires_grad=True)
    probs = torch.softmax(logits, -1)
    loss = emd_loss(probs, torch.full((2, 5), 0.2))
    loss.backward()
    assert float(loss.detach()) < 1e-5 and torch.isfinite(logits.grad).all()


def test_emd_rejects_scores():
    with pytest.raises(ConfigError, match="head=distribution"):
        build_loss("emd")(t([1.0, 2.0]), t([1.0, 2.0]))


# --- correlation ------------------------------------------------------------------------
# pred = [1, 2, 3], mos = [1, 3, 2]: centred [-1, 0, 1] and [-1, 1, 0]; PLCC = 1 / (sqrt2 sqrt2) = 0.5


def test_plcc_loss_by_hand_and_vs_numpy():
    close(build_loss("plcc")(t([1.0, 2.0, 3.0]), t([1.0, 3.0, 2.0])), 1 - 0.5)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=20)
    close(build_loss("plcc")(t(a), t(b)), 1 - np.corrcoef(a, b)[0, 1], 1e-5)


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"p": 2, "q": 2, "alpha": [1, 0]}, (1 - 0.5) / 2),  # (1 - rho) / 2
        ({"p": 2, "q": 2, "alpha": [0, 1]}, (1 - 0.25) / 4),  # (1 - rho^2) / 4
        ({"p": 2, "q": 2, "alpha": [1, 1]}, ((1 - 0.5) / 2 + (1 - 0.25) / 4) / 2),
        # p=1, q=2 (default): a - b = [0, -1, 1] / sqrt2, ||.||_1 = sqrt2, scale 2 sqrt(3)
        ({}, math.sqrt(2) / (2 * math.sqrt(3))),
    ],
)
def test_norm_in_norm_by_hand(kwargs, expected):
    close(build_loss({"name": "norm_in_norm", **kwargs})(t([1.0, 2.0, 3.0]), t([1.0, 3.0, 2.0])), expected)


def test_norm_in_norm_is_scale_and_shift_free():
    pred, mos = t([0.3, 1.7, 0.9, 2.2]), t([1.0, 4.0, 2.5, 3.5])
    close(norm_in_norm_loss(3 * pred + 7, mos), float(norm_in_norm_loss(pred, mos)))
    close(norm_in_norm_loss(t([2.0]), t([3.0])), 0.0)  # batch of one


# --- config -----------------------------------------------------------------------------


def test_weighted_sum_from_config():
    loss = build_loss([{"name": "l1", "weight": 0.5}, "l1_rank", {"name": "l1", "weight": 2}])
    assert isinstance(loss, WeightedSum)
    pred, mos = t([1.0, 2.0, 3.0]), t([1.0, 3.0, 2.0])
    terms = loss.terms(pred, mos)
    assert list(terms) == ["l1", "l1_rank", "l1_2"]
    close(loss(pred, mos), 0.5 * (2 / 3) + (2 / 3 + 1 / 3) + 2 * (2 / 3))
    single = build_loss({"name": "mse", "weight": 3})
    close(single(t([1.0]), t([3.0])), 3 * 4)


def test_config_errors():
    with pytest.raises(ConfigError, match="did you mean 'l1_rank'"):
        build_loss("l1_rnak")
    with pytest.raises(ConfigError, match="did you mean 'margin'"):
        build_loss({"name": "l1_rank", "margn": 0.1})
    with pytest.raises(ConfigError, match="different inputs"):
        build_loss(["l1", "emd"])
    with pytest.raises(ConfigError, match="weight must be a number"):
        build_loss({"name": "l1", "weight": "x"})
    with pytest.raises(ConfigError, match="'name'"):
        build_loss({"weight": 1})
    with pytest.raises(ConfigError, match=r"distribution head"):
        build_loss("l1")(torch.rand(2, 5), t([1.0, 2.0]))
    with pytest.raises(ConfigError, match=">= 0"):
        build_loss({"name": "l1_rank", "margin": -1})


CORE_MODULES = {f"qualitas.losses.{m}" for m in ("regression", "ranking", "distribution", "correlation")}


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_gives_finite_gradients(name):
    torch.manual_seed(0)
    loss = build_loss(name)
    if type(loss).__module__ not in CORE_MODULES:
        pytest.skip(f"{name} takes inputs of its own family ({type(loss).__module__}); tested there")
    if loss.input_kind == "distribution":
        logits = torch.randn(4, 5, requires_grad=True)
        value = loss(torch.softmax(logits, -1), torch.rand(4, 5))
        leaf = logits
    else:
        leaf = torch.randn(6, requires_grad=True)
        value = loss(leaf, torch.randn(6))
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value)
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0

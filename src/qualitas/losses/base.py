"""Loss base class, the ``LOSSES`` registry and ``build_loss`` (weighted sums from config).

Every loss is called ``loss(a, b) -> scalar`` and declares what ``a`` and ``b`` are in
``input_kind``:

* ``"score"``: ``(pred (B,), target (B,))`` predicted scores and (normalised) MOS. For a
  distribution model the task passes ``expected_score(probs, model.bins)`` as ``pred``.
* ``"distribution"``: ``(pred (B, N), target (B, N))`` predicted probabilities and vote
  histograms (counts or probabilities; rows are normalised to sum to one).
* ``"pair"``: ``(pred_better (B,), pred_worse (B,))`` scores of the two images of each
  labelled pair, the first known to be of higher quality (RankIQA-style pre-training).
* ``"logits"`` / ``"dense_logits"``: class logits ``(B, K)`` / ``(B, K, H, W)`` and labels or
  masks (the classification and segmentation tasks, :mod:`qualitas.losses.vision`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from qualitas.errors import ConfigError
from qualitas.registry import Registry, did_you_mean

INPUT_KINDS = ("score", "distribution", "pair", "logits", "dense_logits")


class Loss(nn.Module):
    """Base class: subclasses set ``name``/``input_kind`` and implement ``forward(a, b)``."""

    name: ClassVar[str] = ""
    input_kind: ClassVar[str] = "score"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


LOSSES: Registry[type[Loss]] = Registry("losses")


def check_scores(pred: torch.Tensor, target: torch.Tensor, loss: str) -> None:
    """``pred`` and ``target`` must both be ``(B,)`` (a ``(B, N)`` pred means a distribution head)."""
    if pred.ndim != 1 or target.shape != pred.shape:
        hint = " (a (B,N) prediction comes from a distribution head: use emd)" if pred.ndim == 2 else ""
        raise ConfigError(
            f"loss '{loss}' expects scores pred (B,) and target (B,), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}{hint}"
        )


class WeightedSum(Loss):
    """``sum_i w_i * loss_i(a, b)``; all terms must take the same ``input_kind``."""

    name = "weighted_sum"

    def __init__(self, terms: Sequence[tuple[float, Loss]]) -> None:
        super().__init__()
        if not terms:
            raise ConfigError("loss: an empty list of losses")
        kinds = {t.input_kind for _, t in terms}
        if len(kinds) > 1:
            desc = ", ".join(f"{t.name} ({t.input_kind})" for _, t in terms)
            raise ConfigError(f"loss: cannot sum losses that take different inputs: {desc}")
        self.weights = [float(w) for w, _ in terms]
        self.losses = nn.ModuleList([t for _, t in terms])
        self.input_kind = kinds.pop()  # type: ignore[misc]

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted value of each term, keyed by loss name (``l1``, ``emd``, ``emd_2``...)."""
        out: dict[str, torch.Tensor] = {}
        for loss in self.losses:
            key, n = loss.name, 2
            while key in out:
                key, n = f"{loss.name}_{n}", n + 1
            out[key] = loss(pred, target)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values = self.terms(pred, target).values()
        return sum((w * v for w, v in zip(self.weights, values)), torch.zeros((), device=pred.device))


def _build_one(spec: str | Mapping[str, Any]) -> tuple[float, Loss]:
    if isinstance(spec, str):
        return 1.0, LOSSES.get(spec)()
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(f"loss: expected a name or a mapping with 'name', got {spec!r}")
    kwargs = dict(spec)
    name = kwargs.pop("name")
    weight = kwargs.pop("weight", 1.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool):
        raise ConfigError(f"loss '{name}': weight must be a number, got {weight!r}")
    cls = LOSSES.get(name)
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in kwargs:
        if key not in params:
            raise ConfigError(
                f"loss '{name}' has no argument '{key}'{did_you_mean(key, params)}; "
                f"valid: {', '.join(params) or '(none)'}"
            )
    return float(weight), cls(**kwargs)


def build_loss(spec: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] | Loss) -> Loss:
    """Build a loss from config.

    ``"l1"``; ``{"name": "l1_rank", "margin": 0.1}``; ``{"name": "mse", "weight": 2}``; or a
    list of those, summed with their weights. A single term with weight 1 is returned as
    itself, anything else as a :class:`WeightedSum`.
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, (str, Mapping)):
        weight, loss = _build_one(spec)
        return loss if weight == 1.0 else WeightedSum([(weight, loss)])
    if isinstance(spec, Sequence):
        return WeightedSum([_build_one(s) for s in spec])
    raise ConfigError(f"loss: expected a name, a mapping or a list, got {type(spec).__name__}")

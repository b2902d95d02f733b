"""Card-driven input preparation: the evaluation (centred) sizing of training, applied
identically to the distorted and reference media, then fitted to a fixed graph size.

Everything works on ``(..., 3, H, W)`` float tensors in ``[0, 1]``: an image ``(3,H,W)``,
a batch ``(B,3,H,W)`` or a clip ``(T,3,H,W)``; normalisation is inside the graph.
"""

from __future__ import annotations

import torch

from qualitas.data.transforms import InputSize, apply_sizing, match_to, resize, sizing_params
from qualitas.export.card import ModelCard


def size_policy(card: ModelCard) -> InputSize:
    """The card's sizing policy as :class:`qualitas.data.transforms.InputSize` (no flips)."""
    return InputSize.from_dict({**card.input.size_policy, "hflip": False})


def prepare(card: ModelCard, dist: torch.Tensor, ref: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """Size ``dist`` (and ``ref``) for the graph: ``(..., 3, H, W)`` -> ``(..., 3, h, w)``.

    A distorted input whose size differs from its reference is first resized to it
    (bicubic, as in training); then both get the same centred sizing parameters.
    """
    if ref is not None and dist.shape[-2:] != ref.shape[-2:]:
        dist = match_to(dist, (int(ref.shape[-2]), int(ref.shape[-1])))
    h, w = (int(v) for v in dist.shape[-2:])
    params = sizing_params(h, w, size_policy(card), train=False)
    out = [apply_sizing(t, params) for t in ((dist,) if ref is None else (dist, ref))]
    fixed = (card.input.height, card.input.width)
    if fixed[0] and fixed[1] and tuple(out[0].shape[-2:]) != fixed:
        # Only when the export specialised the size although the policy follows the media.
        out = [resize(t, (int(fixed[0]), int(fixed[1]))) for t in out]
    return tuple(out)

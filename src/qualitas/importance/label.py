"""Ground-truth macroblock importance from gradients of an analytics objective.

Definition (docs/importance.md). Let ``x`` be a low-resolution frame ``(3, h, w)``,
``u = U(x)`` its cheap (bicubic) upscale and ``e = E(x)`` its enhanced version, both
``(3, s*h, s*w)``, and ``f`` a differentiable analytics objective (a scalar per frame).
With ``g = d f(e) / d e``:

* ``grad_x_diff`` (default): pixel importance ``p = sum_c |g_c * (e_c - u_c)|`` — the
  first-order size of the objective change if that pixel fell back from ``e`` to ``u``;
* ``grad``: ``p = sum_c |g_c|`` (enhancement-agnostic sensitivity).

The importance of macroblock ``(i, j)`` (``block`` pixels of the LOW-resolution frame, so
``block * s`` pixels of ``e``) is the sum of ``p`` over it. Per frame it is normalised by
the frame's maximum block (``max``, default: values in ``[0, 1]``, quantised into K equal
bins) or its sum (``sum``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from qualitas.data.manifest import atomic_write_text
from qualitas.errors import UsageError
from qualitas.importance.grid import block_sum, normalise, quantise

MODES = ("grad_x_diff", "grad")

Objective = Callable[[torch.Tensor], torch.Tensor]
"""``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)`` differentiable objective."""


def pixel_importance(
    objective: Objective, enhanced: torch.Tensor, cheap: torch.Tensor, mode: str = "grad_x_diff"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel importance ``(B, H, W)`` and the objective ``(B,)`` of ``enhanced``.

    ``enhanced``, ``cheap``: ``(B, 3, H, W)`` at the same (high) resolution.
    """
    if mode not in MODES:
        raise UsageError(f"unknown importance mode '{mode}'; choose one of {', '.join(MODES)}")
    if enhanced.shape != cheap.shape:
        raise UsageError(
            f"enhanced {tuple(enhanced.shape)} and cheap {tuple(cheap.shape)} frames differ in shape"
        )
    e = enhanced.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        value = objective(e)
        (grad,) = torch.autograd.grad(value.sum(), e, allow_unused=True)
    if grad is None:  # objective independent of the pixels (e.g. nothing detected)
        grad = torch.zeros_like(e)
    term = grad * (enhanced - cheap) if mode == "grad_x_diff" else grad
    return term.abs().sum(1), value.detach()


def block_importance(
    objective: Objective,
    enhanced: torch.Tensor,
    cheap: torch.Tensor,
    *,
    scale: int,
    block: int = 16,
    mode: str = "grad_x_diff",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw block importance ``(B, gh, gw)`` on the low-resolution grid, and the objective ``(B,)``."""
    pix, value = pixel_importance(objective, enhanced, cheap, mode)
    return block_sum(pix, block * scale), value


@dataclass
class LabelSet:
    """Importance ground truth of a sequence of frames."""

    frames: list[str]
    raw: np.ndarray
    """``(N, gh, gw)`` float32 raw block importance."""
    objective_enhanced: list[float]
    objective_cheap: list[float]
    block: int
    scale: int
    mode: str
    norm: str = "max"
    k: int = 10
    meta: dict = field(default_factory=dict)

    @property
    def normalised(self) -> np.ndarray:
        return normalise(torch.from_numpy(self.raw), self.norm).numpy()

    @property
    def classes(self) -> np.ndarray:
        """``(N, gh, gw)`` uint8 classes (K bins of max-normalised importance)."""
        return quantise(normalise(torch.from_numpy(self.raw), "max"), self.k).numpy().astype(np.uint8)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``importance.npz`` (raw, normalised, classes) and ``frames.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "importance.tmp.npz"
        np.savez_compressed(tmp, raw=self.raw, normalised=self.normalised, classes=self.classes)
        tmp.replace(out / "importance.npz")
        info = {
            "frames": self.frames,
            "objective_enhanced": self.objective_enhanced,
            "objective_cheap": self.objective_cheap,
            "block": self.block,
            "scale": self.scale,
            "mode": self.mode,
            "norm": self.norm,
            "k": self.k,
            **self.meta,
        }
        atomic_write_text(out / "frames.json", json.dumps(info, indent=1))
        return out

    @classmethod
    def load(cls, out_dir: str | Path) -> LabelSet:
        d = Path(out_dir)
        if not (d / "frames.json").is_file() or not (d / "importance.npz").is_file():
            raise UsageError(f"{d}: not an importance label folder (needs frames.json and importance.npz)")
        info = json.loads((d / "frames.json").read_text())
        with np.load(d / "importance.npz", allow_pickle=False) as z:
            raw = z["raw"]
        known = {"frames", "objective_enhanced", "objective_cheap", "block", "scale", "mode", "norm", "k"}
        return cls(
            frames=list(info["frames"]),
            raw=raw,
            objective_enhanced=list(info.get("objective_enhanced", [])),
            objective_cheap=list(info.get("objective_cheap", [])),
            block=int(info["block"]),
            scale=int(info["scale"]),
            mode=str(info["mode"]),
            norm=str(info.get("norm", "max")),
            k=int(info.get("k", 10)),
            meta={k: v for k, v in info.items() if k not in known},
        )


def label_frames(
    frames: Iterable[tuple[str, torch.Tensor]],
    objective: Objective,
    enhance: Callable[[torch.Tensor], torch.Tensor],
    cheap: Callable[[torch.Tensor], torch.Tensor],
    *,
    scale: int,
    block: int = 16,
    mode: str = "grad_x_diff",
    norm: str = "max",
    k: int = 10,
) -> LabelSet:
    """Label low-resolution frames ``(name, (3, h, w))`` one at a time.

    All frames must share a size (one grid shape per label set).
    """
    names, grids, obj_e, obj_c = [], [], [], []
    shape = None
    for name, lr in frames:
        if shape is None:
            shape = tuple(lr.shape)
        elif tuple(lr.shape) != shape:
            raise UsageError(f"{name}: frame size {tuple(lr.shape)} differs from the first frame's {shape}")
        x = lr.unsqueeze(0)
        with torch.no_grad():
            e, u = enhance(x).clamp(0, 1), cheap(x).clamp(0, 1)
        g, v = block_importance(objective, e, u, scale=scale, block=block, mode=mode)
        with torch.no_grad():
            vc = objective(u)
        names.append(name)
        grids.append(g[0].float().numpy())
        obj_e.append(float(v[0]))
        obj_c.append(float(vc[0]))
    if not names:
        raise UsageError("no frames to label")
    return LabelSet(names, np.stack(grids).astype(np.float32), obj_e, obj_c, block, scale, mode, norm, k)

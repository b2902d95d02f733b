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

from qualitas.errors import UsageError
from qualitas.files import atomic_write_text
from qualitas.functional.blocks import block_sum, normalise, quantise
from qualitas.importance.analytics import reference_objective

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
    raw: list[np.ndarray]
    """Per frame, ``(gh, gw)`` float32 raw block importance (frames may differ in size)."""
    objective_enhanced: list[float]
    objective_cheap: list[float]
    block: int
    scale: int
    mode: str
    norm: str = "max"
    k: int = 10
    meta: dict = field(default_factory=dict)

    @property
    def normalised(self) -> list[np.ndarray]:
        """Per frame, ``(gh, gw)`` importance normalised with ``norm``."""
        return [normalise(torch.from_numpy(r), self.norm).numpy() for r in self.raw]

    @property
    def classes(self) -> list[np.ndarray]:
        """Per frame, ``(gh, gw)`` uint8 classes (K bins of max-normalised importance)."""
        return [
            quantise(normalise(torch.from_numpy(r), "max"), self.k).numpy().astype(np.uint8) for r in self.raw
        ]

    def save(self, out_dir: str | Path) -> Path:
        """Write ``importance.npz`` (raw, normalised, classes) and ``frames.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "importance.tmp.npz"
        arrays = {}
        for name, values in (("raw", self.raw), ("normalised", self.normalised), ("classes", self.classes)):
            arrays.update({f"{name}_{i:06d}": v for i, v in enumerate(values)})
        np.savez_compressed(tmp, **arrays)
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
            raw = [z[f"raw_{i:06d}"] for i in range(len(info["frames"]))]
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
    """Label low-resolution frames ``(name, (3, h, w))`` one at a time."""
    names, grids, obj_e, obj_c = [], [], [], []
    for name, lr in frames:
        x = lr.unsqueeze(0)
        with torch.no_grad():
            e, u = enhance(x).clamp(0, 1), cheap(x).clamp(0, 1)
        # A reference-conditioned objective (mtcnn:boxes=reference) fixes its boxes on e.
        obj = reference_objective(objective, e)
        g, v = block_importance(obj, e, u, scale=scale, block=block, mode=mode)
        with torch.no_grad():
            vc = obj(u)
        names.append(name)
        grids.append(g[0].float().numpy())
        obj_e.append(float(v[0]))
        obj_c.append(float(vc[0]))
    if not names:
        raise UsageError("no frames to label")
    return LabelSet(names, grids, obj_e, obj_c, block, scale, mode, norm, k)


def iter_lowres(
    inputs: list[str | Path],
    *,
    downscale: int = 1,
    frame_step: int = 1,
    max_frames: int | None = None,
) -> Iterable[tuple[str, str, torch.Tensor]]:
    """``(name, group, low-res frame (3, h, w))`` from images, videos or folders of them.

    ``downscale > 1`` makes the low-quality input from pristine media (antialiased bicubic,
    :func:`qualitas.importance.enhancers.bicubic_down`); ``1`` takes the media as it is.
    ``group`` is the source file (frames of one video share it).
    """
    from qualitas.importance.enhancers import bicubic_down
    from qualitas.io.image import IMAGE_EXTENSIONS, read_image
    from qualitas.io.media import media_kind
    from qualitas.io.video import iter_frames

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(f"input not found: {p}")
    for f in files:
        if media_kind(f) == "image":
            frames = [(f.stem, read_image(f).data)]
        else:
            frames = (
                (f"{f.stem}_{fr.index:06d}", fr.data)
                for fr in iter_frames(f, frame_step=frame_step, max_frames=max_frames)
            )
        for name, x in frames:
            if downscale > 1:
                x = bicubic_down(x[None], downscale)[0]
            yield name, f.name, x


def label_media(
    inputs: list[str | Path],
    out_dir: str | Path,
    objective: Objective,
    enhance: Callable[[torch.Tensor], torch.Tensor],
    cheap: Callable[[torch.Tensor], torch.Tensor],
    *,
    scale: int,
    downscale: int = 1,
    block: int = 16,
    mode: str = "grad_x_diff",
    norm: str = "max",
    k: int = 10,
    frame_step: int = 1,
    max_frames: int | None = None,
    meta: dict | None = None,
) -> LabelSet:
    """Label media and save everything under ``out_dir``: the low-res frames as
    ``frames/<name>.png``, ``importance.npz`` and ``frames.json`` (see :class:`LabelSet`)."""
    from PIL import Image

    out = Path(out_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    groups: list[str] = []

    def frames() -> Iterable[tuple[str, torch.Tensor]]:
        for name, group, x in iter_lowres(
            inputs, downscale=downscale, frame_step=frame_step, max_frames=max_frames
        ):
            rel = f"frames/{name}.png"
            arr = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(arr).save(out / rel)
            groups.append(group)
            # Label exactly what was saved (8-bit), so the dataset reproduces the labels.
            yield rel, torch.from_numpy(arr).permute(2, 0, 1).float() / 255

    labels = label_frames(
        frames(), objective, enhance, cheap, scale=scale, block=block, mode=mode, norm=norm, k=k
    )
    labels.meta = {**(meta or {}), "groups": groups, "downscale": downscale}
    labels.save(out)
    return labels

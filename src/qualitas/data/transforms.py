"""Input sizing for quality models: resize, crop, resize-with-padding, fragments.

Quality depends on pixels, so sizing is deliberately minimal (no colour jitter, no flips
that would change the content's statistics — horizontal flips are optional). Parameters
(crop offsets, fragment positions) are drawn once per sample by :func:`sizing_params` and
applied by :func:`apply_sizing` to every tensor of the sample — the distorted and the
reference image of a full-reference pair, and every frame of a clip — so they stay aligned.

Tensors are ``(..., 3, H, W)`` float in ``[0, 1]``: an image ``(3,H,W)`` or a clip ``(T,3,H,W)``.

Modes:

- ``none``: unchanged (native size; batch size 1 or equal-size media).
- ``resize``: to ``size`` exactly (aspect not kept).
- ``crop``: optional ``resize_short`` (short side), then a ``size`` crop: random in training,
  centred in evaluation. Media smaller than the crop are upscaled to fit first.
- ``pad``: resize keeping aspect to fit inside ``size``, centred on a black canvas.
- ``fragments``: FAST-VQA style grid of ``grid x grid`` mini-patches of ``patch`` pixels, one
  per grid cell (random position in the cell in training, centred in evaluation), stitched
  into a ``grid*patch`` square. Keeps native-resolution texture at a fixed cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from qualitas.errors import ConfigError

SIZING_MODES = ("none", "resize", "crop", "pad", "fragments")


@dataclass(frozen=True)
class InputSize:
    """The input-size policy of a model (saved with every run for export/runtime)."""

    mode: str = "none"
    size: tuple[int, int] | None = None
    """Output ``(H, W)`` for resize/crop/pad."""
    resize_short: int = 0
    """crop: first resize so the shorter side has this many pixels (0: no resize)."""
    grid: int = 7
    patch: int = 32
    hflip: bool = False
    """Random horizontal flips in training (off by default: some datasets are not symmetric)."""

    def __post_init__(self) -> None:
        if self.mode not in SIZING_MODES:
            raise ConfigError(
                f"unknown input size mode '{self.mode}'; choose one of {', '.join(SIZING_MODES)}"
            )
        if self.mode in ("resize", "crop", "pad"):
            if self.size is None or len(self.size) != 2 or min(self.size) < 1:
                raise ConfigError(f"input size mode '{self.mode}' needs size: [H, W] with positive values")
        if self.mode == "fragments" and (self.grid < 1 or self.patch < 1):
            raise ConfigError("fragments need grid >= 1 and patch >= 1")

    @property
    def output_hw(self) -> tuple[int, int] | None:
        """Spatial size of the model input, or None when it follows the media."""
        if self.mode == "fragments":
            return (self.grid * self.patch, self.grid * self.patch)
        if self.mode == "none":
            return None
        assert self.size is not None  # checked in __post_init__
        return (int(self.size[0]), int(self.size[1]))

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "size": list(self.size) if self.size is not None else None,
            "resize_short": self.resize_short,
            "grid": self.grid,
            "patch": self.patch,
            "hflip": self.hflip,
        }

    @classmethod
    def from_dict(cls, d: dict) -> InputSize:
        """Inverse of :meth:`to_dict` (missing keys take the defaults; ``size`` back to a tuple)."""
        size = d.get("size")
        return cls(
            mode=str(d.get("mode", "none")),
            size=tuple(int(v) for v in size) if size is not None else None,  # type: ignore[arg-type]
            resize_short=int(d.get("resize_short", 0) or 0),
            grid=int(d.get("grid", 7)),
            patch=int(d.get("patch", 32)),
            hflip=bool(d.get("hflip", False)),
        )


@dataclass(frozen=True)
class SizingParams:
    """Per-sample parameters drawn by :func:`sizing_params`."""

    scaled_hw: tuple[int, int] | None = None
    """Resize to this size first (None: no resize)."""
    crop: tuple[int, int, int, int] | None = None
    """``(top, left, height, width)`` after scaling."""
    pad_to: tuple[int, int] | None = None
    cells: list[tuple[int, int]] = field(default_factory=list)
    """fragments: top-left corner of each mini-patch, row-major."""
    patch: int = 0
    grid: int = 0
    flip: bool = False


def resize(x: torch.Tensor, hw: tuple[int, int], *, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(..., 3, H, W)`` to ``hw`` with antialiasing when shrinking; values stay in [0, 1]."""
    hw = (int(hw[0]), int(hw[1]))
    if tuple(x.shape[-2:]) == hw:
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    out = F.interpolate(
        flat, size=hw, mode=mode, align_corners=False, antialias=mode in ("bilinear", "bicubic")
    )
    return out.clamp_(0.0, 1.0).reshape(*lead, x.shape[-3], *hw)


def _rand(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(max(1, high), (1,), generator=generator).item())


def sizing_params(
    h: int, w: int, policy: InputSize, *, train: bool, generator: torch.Generator | None = None
) -> SizingParams:
    """Draw the sizing parameters for a ``h x w`` sample (random in training, centred in eval)."""
    flip = bool(policy.hflip and train and _rand(2, generator) == 1)
    if policy.mode == "none":
        return SizingParams(flip=flip)
    if policy.mode == "resize":
        return SizingParams(scaled_hw=policy.output_hw, flip=flip)
    if policy.mode == "pad":
        th, tw = policy.output_hw  # type: ignore[misc]
        s = min(th / h, tw / w)
        sh, sw = max(1, min(th, round(h * s))), max(1, min(tw, round(w * s)))
        return SizingParams(scaled_hw=(sh, sw), pad_to=(th, tw), flip=flip)
    if policy.mode == "crop":
        th, tw = policy.output_hw  # type: ignore[misc]
        sh, sw = h, w
        if policy.resize_short > 0:
            s = policy.resize_short / min(h, w)
            sh, sw = round(h * s), round(w * s)
        if sh < th or sw < tw:  # too small for the crop: upscale just enough
            s = max(th / sh, tw / sw)
            sh, sw = max(th, round(sh * s)), max(tw, round(sw * s))
        top = _rand(sh - th + 1, generator) if train else (sh - th) // 2
        left = _rand(sw - tw + 1, generator) if train else (sw - tw) // 2
        scaled = (sh, sw) if (sh, sw) != (h, w) else None
        return SizingParams(scaled_hw=scaled, crop=(top, left, th, tw), flip=flip)
    # fragments
    g, p = policy.grid, policy.patch
    sh, sw = h, w
    if min(h, w) < g * p:  # FAST-VQA upscales media smaller than the fragment canvas
        s = g * p / min(h, w)
        sh, sw = max(g * p, round(h * s)), max(g * p, round(w * s))
    cells = []
    for i in range(g):
        y0, y1 = (i * sh) // g, ((i + 1) * sh) // g
        for j in range(g):
            x0, x1 = (j * sw) // g, ((j + 1) * sw) // g
            ry, rx = max(0, y1 - y0 - p), max(0, x1 - x0 - p)
            dy = _rand(ry + 1, generator) if train else ry // 2
            dx = _rand(rx + 1, generator) if train else rx // 2
            cells.append((min(y0 + dy, sh - p), min(x0 + dx, sw - p)))
    scaled = (sh, sw) if (sh, sw) != (h, w) else None
    return SizingParams(scaled_hw=scaled, cells=cells, patch=p, grid=g, flip=flip)


def apply_sizing(x: torch.Tensor, params: SizingParams) -> torch.Tensor:
    """Apply drawn parameters to ``(..., 3, H, W)``; returns a new tensor."""
    if params.scaled_hw is not None:
        x = resize(x, params.scaled_hw)
    if params.crop is not None:
        t, left, ch, cw = params.crop
        x = x[..., t : t + ch, left : left + cw]
    if params.pad_to is not None:
        th, tw = params.pad_to
        h, w = x.shape[-2:]
        top, left = (th - h) // 2, (tw - w) // 2
        x = F.pad(x, (left, tw - w - left, top, th - h - top), value=0.0)
    if params.cells:
        p, g = params.patch, params.grid
        rows = []
        for i in range(g):
            row = [x[..., y : y + p, xx : xx + p] for (y, xx) in params.cells[i * g : (i + 1) * g]]
            rows.append(torch.cat(row, dim=-1))
        x = torch.cat(rows, dim=-2)
    if params.flip:
        x = x.flip(-1)
    return x.contiguous()


def size_sample(
    tensors: list[torch.Tensor], policy: InputSize, *, train: bool, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Size every tensor of one sample with the same parameters (dist, ref, ...).

    All tensors must share ``H x W`` (match sizes first, e.g. ``match_to``).
    """
    h, w = tensors[0].shape[-2:]
    for t in tensors[1:]:
        if tuple(t.shape[-2:]) != (h, w):
            raise ValueError(
                f"tensors of one sample differ in size: {tuple(t.shape)} vs {tuple(tensors[0].shape)}"
            )
    params = sizing_params(int(h), int(w), policy, train=train, generator=generator)
    return [apply_sizing(t, params) for t in tensors]


def match_to(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of ``x`` to ``hw`` (distorted media to its reference's size)."""
    return resize(x, hw, mode="bicubic")

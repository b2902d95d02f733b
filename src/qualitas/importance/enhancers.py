"""Enhancers: low-resolution frame ``(B, 3, h, w)`` -> ``(B, 3, s*h, s*w)`` in ``[0, 1]``.

Built in (``ENHANCERS``):

* ``bicubic`` — the cheap baseline every importance map is measured against;
* ``unsharp`` — bicubic followed by an unsharp mask (a no-training stand-in for SR);
* ``tiny_sr`` — a small ESPCN-style residual network over bicubic (:class:`TinySR`),
  trainable on pristine photos with :func:`train_tiny_sr`, loaded from a state dict;
* ``rdn`` — the pretrained residual dense networks of the npm packages
  ``@upscalerjs/esrgan-slim`` / ``esrgan-medium`` 1.0.0 (MIT, DIV2K), converted to
  :class:`qualitas.models.rdn.RDN` and shipped in ``qualitas/weights/rdn`` (x2, x3, x4);
* ``module`` — any TorchScript super-resolution module saved with ``torch.jit.save``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from qualitas.errors import UsageError, first_line
from qualitas.registry import Registry

log = logging.getLogger("qualitas.importance")

ENHANCERS: Registry[Callable[..., nn.Module]] = Registry("enhancers")
"""Builders ``(*, scale, ...) -> nn.Module`` mapping ``(B,3,h,w)`` to ``(B,3,s*h,s*w)``."""


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling (align_corners=False, antialias off), clamped to ``[0, 1]``."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def bicubic_down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscaling by an integer factor (crops to a multiple of it)."""
    h, w = x.shape[-2] // scale * scale, x.shape[-1] // scale * scale
    x = x[..., :h, :w]
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True).clamp(0, 1)


class Bicubic(nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic_up(x, self.scale)


class Unsharp(nn.Module):
    """Bicubic, then ``y + amount * (y - gaussian(y, sigma))``."""

    def __init__(self, scale: int, amount: float = 1.0, sigma: float = 1.5) -> None:
        super().__init__()
        self.scale, self.amount = scale, amount
        r = max(1, int(3 * sigma + 0.5))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-(t**2) / (2 * sigma**2))
        self.register_buffer("kernel", (k / k.sum()).view(1, 1, 1, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = bicubic_up(x, self.scale)
        b, c, h, w = y.shape
        r = self.kernel.shape[-1] // 2
        z = F.pad(y.reshape(b * c, 1, h, w), (r, r, r, r), mode="replicate")
        z = F.conv2d(F.conv2d(z, self.kernel), self.kernel.transpose(-1, -2)).reshape(b, c, h, w)
        return (y + self.amount * (y - z)).clamp(0, 1)


class TinySR(nn.Module):
    """ESPCN-style residual SR: ``bicubic(x) + shuffle(conv(x))`` (about 30k parameters)."""

    def __init__(self, scale: int = 4, width: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 5, padding=2),
            nn.PReLU(width),
            nn.Conv2d(width, width, 3, padding=1),
            nn.PReLU(width),
            nn.Conv2d(width, 3 * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        )
        nn.init.zeros_(self.body[4].weight)  # starts as plain bicubic
        nn.init.zeros_(self.body[4].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (bicubic_up(x, self.scale) + self.body(x)).clamp(0, 1)


def train_tiny_sr(
    images: Sequence[torch.Tensor],
    *,
    scale: int = 4,
    steps: int = 300,
    patch: int = 96,
    batch: int = 16,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
) -> TinySR:
    """Train :class:`TinySR` on pristine images ``(3, H, W)`` (L1 on random patches).

    Low-resolution inputs are made with :func:`bicubic_down`, so the network learns to
    invert exactly the degradation used in the importance experiments.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pool = [im for im in images if min(im.shape[-2:]) >= patch]
    if not pool:
        raise UsageError(f"train_tiny_sr: no image is at least {patch}x{patch}")
    net = TinySR(scale, width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(steps):
        crops = []
        for _ in range(batch):
            im = pool[int(torch.randint(len(pool), (1,), generator=g))]
            y0 = int(torch.randint(im.shape[-2] - patch + 1, (1,), generator=g))
            x0 = int(torch.randint(im.shape[-1] - patch + 1, (1,), generator=g))
            crops.append(im[:, y0 : y0 + patch, x0 : x0 + patch])
        hr = torch.stack(crops)
        lr_im = bicubic_down(hr, scale)
        loss = (net(lr_im) - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            log.info("tiny_sr step %d: L1 %.4f", step, float(loss.detach()))
    return net.eval()


@ENHANCERS.register("bicubic")
def bicubic(*, scale: int = 4) -> nn.Module:
    return Bicubic(scale)


@ENHANCERS.register("unsharp")
def unsharp(*, scale: int = 4, amount: float = 1.0, sigma: float = 1.5) -> nn.Module:
    return Unsharp(scale, amount, sigma)


@ENHANCERS.register("tiny_sr")
def tiny_sr(*, scale: int = 4, path: str | None = None, width: int = 32) -> nn.Module:
    """A :class:`TinySR` with weights from ``path`` (a state dict, read with weights_only=True)."""
    net = TinySR(scale, width)
    if path is None:
        raise UsageError("enhancer tiny_sr needs path=WEIGHTS.pth (train one with train_tiny_sr)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise UsageError(f"{path}: not a readable state dict ({first_line(err)})") from None
    try:
        net.load_state_dict(sd)
    except RuntimeError as err:
        raise UsageError(
            f"{path}: weights do not fit tiny_sr(scale={scale}, width={width}): {first_line(err)}"
        ) from None
    return net.eval()


class RDNEnhancer(nn.Module):
    """A 0..255 :class:`~qualitas.models.rdn.RDN` as a ``[0, 1]`` enhancer (output clamped)."""

    def __init__(self, net: nn.Module, scale: int) -> None:
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x * 255.0) / 255.0).clamp(0, 1)


@ENHANCERS.register("rdn")
def rdn(*, scale: int = 4, variant: str = "medium", folder: str | None = None) -> nn.Module:
    """Pretrained UpscalerJS RDN (``variant`` slim | medium, ``scale`` 2 | 3 | 4), or the
    converted models in ``folder`` (a folder with ``rdn.json`` from ``convert_upscalerjs``)."""
    from qualitas.models.rdn import load_rdn

    return RDNEnhancer(load_rdn(scale=scale, variant=str(variant), folder=folder), scale).eval()


@ENHANCERS.register("module")
def module(*, scale: int = 4, path: str | None = None) -> nn.Module:
    """A TorchScript SR module (``torch.jit.save``) mapping ``(B,3,h,w)`` to ``(B,3,s*h,s*w)``."""
    if path is None or not Path(path).is_file():
        raise UsageError(f"enhancer module needs path=FILE.pt (TorchScript), got {path!r}")
    try:
        net = torch.jit.load(path, map_location="cpu")
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"{path}: not a TorchScript module ({first_line(err)})") from None
    return net.eval()


def build_enhancer(spec: str, *, scale: int) -> nn.Module:
    """``"name"`` or ``"name:key=value,key=value"`` (e.g. ``tiny_sr:path=sr.pth``)."""
    name, _, rest = spec.partition(":")
    kwargs: dict = {"scale": scale}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise UsageError(f"enhancer argument '{part}' is not key=value")
        kwargs[key.strip()] = _parse_value(value.strip())
    if kwargs["scale"] != scale:  # e.g. rdn:scale=3 with --scale 4: frames would not line up
        raise UsageError(f"enhancer '{spec}' upscales by {kwargs['scale']} but the pipeline scale is {scale}")
    from qualitas.models.registry import check_kwargs

    builder = ENHANCERS.get(name)
    check_kwargs(builder, kwargs, f"enhancer '{name}'")
    return builder(**kwargs)


def _parse_value(v: str) -> object:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v

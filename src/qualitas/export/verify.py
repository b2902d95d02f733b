"""Parity of an export with the PyTorch model it came from.

``verification_cases(card)`` builds the inputs: random tensors at the exported size (batch
1 and 2), at another batch/height/width/clip length when those are dynamic, and real
content — scikit-image's sample photos sized by the card's policy (a blurred copy as the
distorted input of full-reference models), and for video models clips made from those
photos by panning a window across them (real motion). ``check_parity`` runs both and
reports the largest absolute difference of the raw outputs (scores, or probabilities of
distribution heads).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from qualitas.export.card import ModelCard
from qualitas.export.common import example_hw, example_inputs
from qualitas.export.preprocess import prepare

DEFAULT_TOLERANCE = 1e-4
SAMPLE_IMAGES = ("astronaut", "coffee", "chelsea", "rocket")


@dataclass
class Case:
    name: str
    inputs: tuple[torch.Tensor, ...]
    real: bool = False


@dataclass
class ParityReport:
    """Largest absolute output difference per case and overall, against ``tolerance``."""

    tolerance: float
    cases: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((c["max_abs_diff"] for c in self.cases), default=math.nan)

    @property
    def ok(self) -> bool:
        return bool(self.cases) and self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        def finite(v: float) -> float | None:  # JSON has no inf/nan
            return v if math.isfinite(v) else None

        return {
            "max_abs_diff": finite(self.max_abs_diff),
            "tolerance": self.tolerance,
            "ok": self.ok,
            "cases": [{**c, "max_abs_diff": finite(c["max_abs_diff"])} for c in self.cases],
            "notes": self.notes,
        }

    def summary(self) -> str:
        lines = [
            f"{c['name']:<28} {str(c['shape']):<24} max |diff| {c['max_abs_diff']:.3g}" for c in self.cases
        ]
        verdict = "ok" if self.ok else "FAILED"
        lines.append(f"parity {verdict}: max |diff| {self.max_abs_diff:.3g} (tolerance {self.tolerance:g})")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def sample_photos(size: int = 256) -> list[torch.Tensor]:
    """scikit-image's sample photos ``(3,H,W)`` in ``[0,1]``, short side ``size``; [] without skimage."""
    try:
        from skimage import data
    except ImportError:
        return []
    out = []
    for name in SAMPLE_IMAGES:
        img = torch.from_numpy(getattr(data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 255.0
        h, w = img.shape[-2:]
        s = size / min(h, w)
        img = F.interpolate(img[None], size=(round(h * s), round(w * s)), mode="bilinear", antialias=True)[0]
        out.append(img.clamp(0, 1))
    return out


def blurred(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Gaussian blur of ``(..., 3, H, W)`` (a distorted copy for full-reference cases)."""
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    lead = x.shape[:-3]
    y = x.reshape(-1, 3, *x.shape[-2:])
    y = F.pad(y, (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    y = F.conv2d(y, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    return y.reshape(*lead, 3, *y.shape[-2:])


def pan_clip(photo: torch.Tensor, frames: int, *, step: int = 6) -> torch.Tensor:
    """``(T,3,h,w)`` clip: a window moving diagonally over ``photo`` (real content, real motion)."""
    h, w = photo.shape[-2:]
    ch, cw = h - step * frames, w - step * frames
    if ch < 16 or cw < 16:
        raise ValueError(f"photo {h}x{w} too small for a {frames}-frame pan")
    return torch.stack([photo[:, i * step : i * step + ch, i * step : i * step + cw] for i in range(frames)])


def verification_cases(card: ModelCard, *, real: bool = True) -> tuple[list[Case], list[str]]:
    """Inputs to compare on, plus notes (e.g. why real images were left out)."""
    cases = [
        Case("random batch 2", example_inputs(card, 2, seed=1)),
        Case("random batch 1", example_inputs(card, 1, seed=2)),
    ]
    h, w = example_hw(card)
    shape: dict = {}
    if card.input.dynamic_hw:
        shape["hw"] = (h + 32, w + 64)
    if card.video and card.input.num_frames is None and card.clips is not None:
        shape["frames"] = card.clips.num_frames + 2
    cases.append(
        Case("random batch 3" + (" other size" if shape else ""), example_inputs(card, 3, seed=3, **shape))
    )
    notes: list[str] = []
    if not real:
        return cases, notes
    photos = sample_photos()
    if not photos:
        notes.append("scikit-image is not installed: real images were not checked (pip install scikit-image)")
        return cases, notes
    t = card.input.num_frames or (card.clips.num_frames if card.clips else 1)
    items = []
    for p in photos:
        ref = pan_clip(p, t) if card.video else p
        dist = blurred(ref)
        items.append(prepare(card, dist, ref) if card.full_reference else prepare(card, dist))
    if len({tuple(it[0].shape) for it in items}) == 1:
        batch = tuple(torch.stack([it[k] for it in items]) for k in range(len(items[0])))
        cases.append(Case("sample clips" if card.video else "sample photos", batch, real=True))
    else:  # native-size models: one photo per call
        for i, it in enumerate(items):
            cases.append(Case(f"sample {SAMPLE_IMAGES[i]}", tuple(x[None] for x in it), real=True))
    return cases, notes


@torch.no_grad()
def check_parity(
    reference: Callable[..., torch.Tensor],
    candidate: Callable[..., torch.Tensor],
    cases: list[Case],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    notes: list[str] | None = None,
) -> ParityReport:
    """Run both on every case; differences of the raw outputs in float64."""
    report = ParityReport(tolerance=tolerance, notes=list(notes or []))
    for case in cases:
        want = reference(*case.inputs).detach().double().cpu()
        try:
            got = candidate(*case.inputs).detach().double().cpu()
        except Exception as err:  # noqa: BLE001 - a runtime refusing an input is a parity failure
            report.notes.append(
                f"{case.name}: the export failed on this input ({type(err).__name__}: {_line(err)})"
            )
            report.cases.append(
                {"name": case.name, "shape": list(case.inputs[0].shape), "max_abs_diff": math.inf}
            )
            continue
        if got.shape != want.shape:
            diff = math.inf
            report.notes.append(f"{case.name}: output shape {tuple(got.shape)} vs {tuple(want.shape)}")
        else:
            diff = float((got - want).abs().max()) if got.numel() else 0.0
            if not math.isfinite(diff):
                diff = math.inf
        report.cases.append({"name": case.name, "shape": list(case.inputs[0].shape), "max_abs_diff": diff})
    return report


def _line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""

"""Full-reference pairing: which reference goes with each distorted file, and making a
pair comparable (size policy, frame-rate check).

Rules (docs/media-io.md):

- Each DIST is a file or a folder; folders are walked recursively (sorted, media
  extensions only, hidden entries skipped).
- ``ref=None``: no-reference, every pair has ``ref=None``.
- ``ref`` a file: every distorted file is paired with it.
- ``ref`` a folder: a distorted file is matched by its path relative to its DIST folder
  with the extension ignored (``dist/a/b.mp4`` <-> ``ref/a/b.y4m``); a DIST given as a
  file is matched by its file name. No match, or several references that differ only
  by extension (unless one has the same extension), gives the pair an ``error``.
- A missing DIST or reference gives an ``error`` instead of stopping the batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from qualitas.errors import MediaError, UsageError
from qualitas.io.media import is_media

if TYPE_CHECKING:  # annotations only
    import torch

__all__ = ["Pair", "collect_pairs", "match_size", "size_note", "check_fps", "FPS_TOLERANCE"]

# Relative frame-rate difference below which two rates count as equal: rounding noise in
# container rates (24 vs 23.9999) passes, while 29.97 vs 30 (0.1% apart) is a mismatch.
FPS_TOLERANCE = 0.0005


@dataclass(frozen=True)
class Pair:
    """A distorted file, its reference (``None`` for no-reference) and a one-line error.

    :func:`collect_pairs` gives ``Path`` values; the scoring runtime (its ``collect`` and
    manifests) uses the same class with paths as text."""

    dist: Path | str
    ref: Path | str | None = None
    error: str | None = None


def walk_media(folder: Path) -> list[Path]:
    """Media files under ``folder`` (recursive, sorted by relative path, hidden skipped)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and is_media(name):
                found.append(Path(root) / name)
    return sorted(found, key=lambda p: PurePosixPath(p.relative_to(folder)).as_posix())


def _key(rel: Path) -> str:
    """Matching key: relative path without the extension, ``/``-separated."""
    return PurePosixPath(rel.with_suffix("")).as_posix() if rel.suffix else PurePosixPath(rel).as_posix()


def collect_pairs(dists: list[str | os.PathLike], ref: str | os.PathLike | None) -> list[Pair]:
    """Expand DIST files/folders into ``Pair`` s (see the module rules)."""
    ref_path = None if ref is None else Path(ref)
    ref_index: dict[str, list[Path]] | None = None
    ref_error = None
    if ref_path is not None:
        if not ref_path.exists():
            ref_error = f"{ref_path}: reference not found"
        elif ref_path.is_dir():
            ref_index = {}
            for f in walk_media(ref_path):
                ref_index.setdefault(_key(f.relative_to(ref_path)), []).append(f)

    pairs: list[Pair] = []
    for d in dists:
        dist = Path(d)
        if not dist.exists():
            pairs.append(Pair(dist, ref_path, f"{dist}: no such file or folder"))
            continue
        if dist.is_dir():
            members = [(f, f.relative_to(dist)) for f in walk_media(dist)]
            if not members:
                pairs.append(Pair(dist, ref_path, f"{dist}: folder holds no image or video files"))
        else:
            members = [(dist, Path(dist.name))]
        for f, rel in members:
            if ref_path is None:
                pairs.append(Pair(f))
            elif ref_error is not None:
                pairs.append(Pair(f, ref_path, ref_error))
            elif ref_index is None:
                pairs.append(Pair(f, ref_path))
            else:
                pairs.append(_match_in_folder(f, rel, ref_path, ref_index))
    return pairs


def _match_in_folder(dist: Path, rel: Path, ref_root: Path, index: dict[str, list[Path]]) -> Pair:
    candidates = index.get(_key(rel), [])
    if len(candidates) > 1:
        same_ext = [c for c in candidates if c.suffix.lower() == dist.suffix.lower()]
        candidates = same_ext if len(same_ext) == 1 else candidates
    if not candidates:
        return Pair(dist, None, f"no reference found for {rel.as_posix()} in {ref_root}")
    if len(candidates) > 1:
        names = ", ".join(c.relative_to(ref_root).as_posix() for c in candidates)
        return Pair(dist, None, f"ambiguous reference for {rel.as_posix()} in {ref_root}: {names}")
    return Pair(dist, candidates[0])


def size_note(dist_hw: tuple[int, int], ref_hw: tuple[int, int]) -> str | None:
    """``"scaled 640x360->1280x720 (bicubic)"`` when sizes differ, else ``None``."""
    if tuple(dist_hw) == tuple(ref_hw):
        return None
    (dh, dw), (rh, rw) = dist_hw, ref_hw
    return f"scaled {dw}x{dh}->{rw}x{rh} (bicubic)"


def match_size(
    dist: torch.Tensor, ref_hw: tuple[int, int], policy: Literal["scale", "error"] = "scale"
) -> torch.Tensor:
    """Bring distorted frames ``(B, 3, H, W)`` (or ``(3, H, W)``) to the reference ``(H, W)``.

    ``"scale"``: bicubic (``align_corners=False``; antialiased when shrinking), clamped to
    ``[0, 1]``; ``"error"``: ``MediaError`` when the sizes differ. Returns ``dist``
    itself when the sizes already match; ``size_note`` gives the text to record.
    """
    if policy not in ("scale", "error"):
        raise UsageError(f"unknown size policy {policy!r}; choose 'scale' or 'error'")
    if dist.ndim not in (3, 4):
        raise MediaError(f"expected (B,3,H,W) or (3,H,W), got {tuple(dist.shape)}")
    rh, rw = int(ref_hw[0]), int(ref_hw[1])
    dh, dw = int(dist.shape[-2]), int(dist.shape[-1])
    if (dh, dw) == (rh, rw):
        return dist
    if policy == "error":
        raise MediaError(
            f"sizes differ: distorted {dw}x{dh} vs reference {rw}x{rh} (--on-size-mismatch error)"
        )
    batch = dist if dist.ndim == 4 else dist.unsqueeze(0)
    shrinking = rh < dh or rw < dw
    import torch.nn.functional as F

    out = F.interpolate(batch, size=(rh, rw), mode="bicubic", align_corners=False, antialias=shrinking)
    out = out.clamp_(0.0, 1.0)  # bicubic overshoots near edges
    return out if dist.ndim == 4 else out[0]


def check_fps(dist_info, ref_info, allow_mismatch: bool = False) -> str | None:
    """Compare frame rates (``VideoInfo`` or numbers): ``MediaError`` when they differ by
    more than ``FPS_TOLERANCE`` (relative) unless ``allow_mismatch``; then returns a note."""
    d = float(getattr(dist_info, "fps", dist_info))
    r = float(getattr(ref_info, "fps", ref_info))
    if d > 0 and r > 0 and abs(d - r) <= FPS_TOLERANCE * max(d, r):
        return None
    msg = f"frame rates differ: distorted {d:g} fps vs reference {r:g} fps"
    if not allow_mismatch:
        raise MediaError(f"{msg} (pass --allow-fps-mismatch to score anyway)")
    return f"{msg}; frames paired by index"

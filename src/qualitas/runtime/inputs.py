"""Checks on one input before decoding: its media kind, that it is a readable file, and
the size policy between a distorted input and its reference."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from qualitas.errors import MediaError
from qualitas.runtime.options import INPUT_ERRORS, Result

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    import torch


def _kind_of(path: str | os.PathLike) -> str:
    """``"image"`` or ``"video"`` by extension (raw ``.yuv`` is a video); MediaError otherwise."""
    from qualitas.io.media import media_kind

    return media_kind(path)


def _guess_kind(path: str | os.PathLike) -> str | None:
    try:
        return _kind_of(path)
    except INPUT_ERRORS:
        return None


def _check_readable(path: str | os.PathLike, what: str) -> None:
    """Exists, is a file, is not empty; ``what`` prefixes the message ("" or "reference ")."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{what}{p}: not found")
    if p.is_dir():
        raise MediaError(f"{what}{p}: is a folder, expected a file")
    if p.stat().st_size == 0:
        raise MediaError(f"{what}{p}: empty file (0 bytes)")


def _match(dist: torch.Tensor, ref_hw: tuple[int, int], policy: str) -> torch.Tensor:
    """Bring ``dist`` (B,3,H,W) to the reference (H, W) by the size policy (no-op when equal)."""
    if tuple(dist.shape[-2:]) == tuple(ref_hw):
        return dist
    from qualitas.io.pairing import match_size

    return match_size(dist, ref_hw, policy=policy)


def _size_check(res: Result, dist_wh: tuple[int, int], ref_wh: tuple[int, int], policy: str) -> None:
    """Apply the size policy to a pair before any decoding; records what was done."""
    if dist_wh == ref_wh:
        return
    (dw, dh), (rw, rh) = dist_wh, ref_wh
    if policy == "error":
        raise MediaError(
            f"sizes differ: distorted {dw}x{dh} vs reference {rw}x{rh} (--on-size-mismatch error)"
        )
    res.scaled_from = (dw, dh)
    res.notes.append(f"distorted scaled from {dw}x{dh} to the reference size {rw}x{rh} (bicubic)")

"""Dataset of importance ground truth for ``qualitas train`` (``data.dataset: importance``).

Manifest rows (written by ``qualitas importance export-dataset``): ``path`` = the
low-resolution frame, ``grid`` = a ``.npy`` ``(gh, gw)`` float32 max-normalised importance
grid, ``block`` = its macroblock size in pixels, ``mos`` = the frame's objective gain from full enhancement (informational; it is
what the row check requires). Samples: ``input (3, H, W)``, ``target (gh, gw)``.

Sizing: ``input_size.mode`` ``none`` (whole frames; batch frames of one size) or ``crop``
with ``size`` in pixels (multiples of the block): a random block-aligned crop in
training, the centred one in evaluation, cropping the grid with it; ``hflip`` flips both.
"""

from __future__ import annotations

import numpy as np
import torch

from qualitas.data.base import DATASETS, ImageDataset
from qualitas.data.manifest import Record
from qualitas.data.scores import record_mos
from qualitas.errors import ConfigError, MediaError


def _block_of(h: int, w: int, gh: int, gw: int, path: str, block: int | None) -> int:
    """The row's ``block`` (checked against the grid), else the one square block that fits."""
    cands = [block] if block else [b for b in range(1, h + 1) if -(-h // b) == gh and -(-w // b) == gw]
    if not cands or -(-h // cands[0]) != gh or -(-w // cands[0]) != gw:
        raise MediaError(
            f"{path}: grid {gh}x{gw} does not tile a {h}x{w} frame with {block or 'square'} px blocks"
        )
    if len(cands) > 1 and 16 in cands:
        return 16
    return cands[0]


@DATASETS.register("importance")
class ImportanceDataset(ImageDataset):
    """Low-resolution frames with their importance grids (see module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.input_size.mode not in ("none", "crop"):
            raise ConfigError(
                f"the importance dataset supports input_size.mode none or crop, got '{self.input_size.mode}'"
            )
        if self.input_size.mode == "crop" and self.input_size.size is None:
            raise ConfigError("input_size.mode crop needs input_size.size [H, W]")
        missing = [r.path for r in self.records if "grid" not in r.extra]
        if missing:
            raise ConfigError(
                f"importance rows need a 'grid' (.npy) field; {len(missing)} have none, e.g. {missing[0]}"
            )

    def _grid(self, rec: Record) -> torch.Tensor:
        p = self._path(rec.extra["grid"])
        g = np.load(p, allow_pickle=False)
        if g.ndim != 2:
            raise MediaError(f"{rec.extra['grid']}: expected a 2-D grid, got shape {g.shape}")
        return torch.from_numpy(g.astype(np.float32))

    def __getitem__(self, index: int) -> dict | None:
        rec_index, _ = self.items[index]
        rec = self.records[rec_index]
        try:
            x = self._media(rec.path, None)
            g = self._grid(rec)
            h, w = x.shape[-2:]
            b = _block_of(h, w, *g.shape, rec.path, rec.extra.get("block"))
            if self.input_size.mode == "crop":
                ch, cw = self.input_size.size  # type: ignore[misc]
                if ch % b or cw % b:
                    raise ConfigError(f"crop size {ch}x{cw} must be a multiple of the block ({b})")
                nh, nw = min(ch // b, h // b), min(cw // b, w // b)
                if self.train:
                    i0 = int(torch.randint(h // b - nh + 1, ()))
                    j0 = int(torch.randint(w // b - nw + 1, ()))
                else:
                    i0, j0 = (h // b - nh) // 2, (w // b - nw) // 2
                x = x[:, i0 * b : (i0 + nh) * b, j0 * b : (j0 + nw) * b]
                g = g[i0 : i0 + nh, j0 : j0 + nw]
            if self.train and self.input_size.hflip and bool(torch.rand(()) < 0.5):
                x, g = x.flip(-1), g.flip(-1)
        except (MediaError, OSError, ValueError) as err:
            self.failures[rec.path] += 1
            if self.failures[rec.path] == 1:
                import logging

                logging.getLogger(__name__).warning("skipping %s: %s", rec.path, err)
            return None
        mos = record_mos(rec, self.vote_bins)
        return {
            "input": x.contiguous(),
            "target": g.contiguous(),
            "index": index,
            "item": rec_index,
            "mos": torch.tensor(mos, dtype=torch.float32),
        }

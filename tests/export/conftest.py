"""Shared fixtures: one really trained tiny run, its exports (made once), tiny media."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "training"))

from helpers import photo, save_png, write_clip  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the shared cores thrash with more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A 1-epoch NR run of the shipped KonIQ config on 3 photos x 4 blur levels (48 px,
    centre crop 32 px, MOS min-max normalised to [1, 5]): the model users export."""
    from train_helpers import make_image_dataset, overrides

    from qualitas.training.config import load_config
    from qualitas.training.run import train

    torch.set_num_threads(1)
    data = make_image_dataset(
        tmp_path_factory.mktemp("export_data"), contents=("astronaut", "coffee", "chelsea"), levels=4
    )
    cfg = load_config(
        "configs/nr_iqa_koniq.yaml",
        overrides(
            data,
            "data.input_size.size=[64,64]",
            "data.input_size.resize_short=64",
            "data.batch_size=8",
            "loss=l1",
            "trainer.max_epochs=1",
            "scheduler.warmup_epochs=0",
            "data.split_ratios={train: 0.34, val: 0.33, test: 0.33}",
            "run.name=tiny_koniq",
        ),
    )
    out = tmp_path_factory.mktemp("export_runs") / "nr"
    train(cfg, out=out)
    return out


_EXPORTS: dict = {}


@pytest.fixture(scope="session")
def export_of(trained_run, tmp_path_factory):
    """``export_of(fmt, **kw) -> ExportResult``: each distinct export is made once per session."""
    from qualitas.export.pipeline import export_model

    def make(fmt: str, **kw):
        key = (fmt, tuple(sorted(kw.items())))
        if key not in _EXPORTS:
            out = tmp_path_factory.mktemp(f"export_{fmt}")
            _EXPORTS[key] = export_model(trained_run, fmt, out, verify=True, **kw)
        return _EXPORTS[key]

    return make


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """``images/``: 3 photos of different sizes; ``clip.mp4``: a 12-frame 32 px pan."""
    root = tmp_path_factory.mktemp("export_media")
    for name, size in (("astronaut", 64), ("coffee", 80), ("chelsea", 72)):
        save_png(photo(size, name), root / "images" / f"{name}.png")
    return {"images": root / "images", "clip": write_clip(root / "videos" / "clip.mp4"), "root": root}

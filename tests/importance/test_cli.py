"""`qualitas importance label | export-dataset | apply` end to end with a cheap analytics."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from qualitas.cli.main import main
from qualitas.importance.analytics import ANALYTICS


class _Corner(torch.nn.Module):
    """Objective = energy of the top-left 32x32 output pixels (cheap, differentiable)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :32, :32].pow(2).sum(dim=(1, 2, 3))


if "test_corner" not in ANALYTICS:
    ANALYTICS.add("test_corner", lambda: _Corner())


def test_label_export_apply(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        Image.fromarray((torch.rand(64, 96, 3, generator=g) * 255).byte().numpy()).save(src / f"p{i}.png")
    labels = tmp_path / "labels"
    args = ["importance", "label", str(src), "--out", str(labels), "--analytics", "test_corner"]
    assert main([*args, "--enhancer", "unsharp", "--scale", "2", "--downscale", "2", "--block", "8"]) == 0
    info = json.loads((labels / "frames.json").read_text())
    assert info["frames"] == ["frames/p0.png", "frames/p1.png", "frames/p2.png"] and info["block"] == 8
    assert (
        main(
            ["importance", "export-dataset", str(labels), "--out", str(tmp_path / "ds"), "--ratios", "1,1,1"]
        )
        == 0
    )
    assert (
        sum(len((tmp_path / "ds" / f"{s}.txt").read_text().splitlines()) for s in ("train", "val", "test"))
        == 3
    )
    out = tmp_path / "applied"
    assert (
        main(["importance", "apply", str(labels), "--select", "top:25%", "--out", str(out), "--save-frames"])
        == 0
    )
    rep = json.loads((out / "report.json").read_text())
    # 32x48 low-res frames -> 4x6 blocks; the objective lives in the top-left 2x2 enhanced
    # blocks (16 px each at scale 2), i.e. 4 of the 6 selected blocks cover it entirely.
    assert rep["frames"][0]["cost"] == np.float64(0.25)
    assert abs(rep["recovered"] - 1.0) < 1e-6
    assert (out / "frames" / "p0.png").is_file()
    assert main(["importance", "apply", str(labels), "--select", "top:200%", "--out", str(out)]) != 0
    assert "fraction" in capsys.readouterr().err

"""The pretrained RDN as an importance enhancer: ``--enhancer rdn[:scale=S,variant=V]``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from qualitas.cli.main import main
from qualitas.errors import ConfigError, UsageError
from qualitas.importance.enhancers import ENHANCERS, RDNEnhancer, build_enhancer


def test_rdn_spec_builds_each_shipped_scale():
    assert "rdn" in ENHANCERS
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 30), torch.linspace(0, 1, 36), indexing="ij")
    x = torch.stack([0.2 + 0.6 * xx, 0.5 + 0.3 * torch.sin(3 * yy), 0.3 + 0.4 * xx * yy])[None]
    for spec, scale in (
        ("rdn", 3),
        ("rdn:scale=3", 3),
        ("rdn:scale=2,variant=slim", 2),
        ("rdn:variant=medium", 4),
    ):
        enh = build_enhancer(spec, scale=scale)
        assert isinstance(enh, RDNEnhancer)
        with torch.no_grad():
            y = enh(x)
        assert y.shape == (1, 3, 30 * scale, 36 * scale) and 0 <= float(y.min()) and float(y.max()) <= 1
        # It upscales x (not noise, not shifted): away from the border of a smooth frame it is
        # within a few grey levels of the bicubic upscale.
        up = build_enhancer("bicubic", scale=scale)(x)
        b = 4 * scale
        assert float((y - up)[..., b:-b, b:-b].abs().mean()) < 3 / 255


@pytest.mark.parametrize(
    ("spec", "scale", "err", "match"),
    [
        ("rdn:scale=3", 4, UsageError, r"upscales by 3 but the pipeline scale is 4"),
        (
            "rdn",
            8,
            UsageError,
            r"no RDN weights for variant=medium scale=8 \(available: medium x2/x3/x4, slim",
        ),
        ("rdn:variant=large", 3, UsageError, r"variant=large scale=3"),
        ("rdn:varient=slim", 3, ConfigError, r"did you mean 'variant'"),
        ("rdn:slim", 3, UsageError, r"'slim' is not key=value"),
    ],
)
def test_rdn_spec_errors_are_one_line(spec, scale, err, match):
    with pytest.raises(err, match=match) as info:
        build_enhancer(spec, scale=scale)
    assert "\n" not in str(info.value)


def test_cli_label_with_rdn_and_bad_scale(tmp_path, capsys):
    from qualitas.importance.analytics import ANALYTICS

    class _Energy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.pow(2).sum(dim=(1, 2, 3))

    if "test_energy" not in ANALYTICS:
        ANALYTICS.add("test_energy", lambda: _Energy())
    src = tmp_path / "src"
    src.mkdir()
    arr = (np.random.default_rng(0).uniform(0, 1, (48, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(src / "a.png")
    args = ["importance", "label", str(src), "--analytics", "test_energy", "--downscale", "3", "--block", "8"]
    assert main([*args, "--out", str(tmp_path / "ok"), "--enhancer", "rdn:scale=3", "--scale", "3"]) == 0
    capsys.readouterr()
    code = main([*args, "--out", str(tmp_path / "bad"), "--enhancer", "rdn:scale=3", "--scale", "4"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "upscales by 3 but the pipeline scale is 4" in err

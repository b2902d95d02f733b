"""The full-reference metric library against its official MATLAB implementations.

Reference numbers come from the authors' MATLAB releases run in GNU Octave on pairs built
from skimage.data (see reference_values/fr_make_reference.py, which also builds the same
pairs here). The tolerance is far below the 1% the project requires; where it is looser
than float rounding the reason is written next to it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from qualitas.metrics import cw_ssim, fsim, gmsd, mad, nlpd, vif, vifp, vsi
from qualitas.metrics.ciede2000 import ciede2000, delta_e2000

REFERENCE_DIR = Path(__file__).parent / "reference_values"
REFERENCE = json.loads((REFERENCE_DIR / "fr_reference_values.json").read_text())["values"]

FUNCTIONS = {
    "vif": vif.vif,
    "vifp": vifp.vifp,
    "gmsd": gmsd.gmsd,
    # FSIM and FSIMc share all their work: one call checks both.
    "fsim+fsimc": lambda d, r: torch.stack(fsim._fsim_both(d, r), dim=1),
    "vsi": vsi.vsi,
    "mad": mad.mad,
    "nlpd": nlpd.nlpd,
    "cw_ssim": cw_ssim.cw_ssim,
    "ciede2000": ciede2000,
}
# Relative tolerance per metric. Most agree to ~1e-7 (float32 output); VSI's SDSP resizes
# with imresize, which in Octave (unlike MATLAB and qualitas) does not renormalise its
# antialiasing weights for non-integer ratios (measured 3e-5); CIEDE2000 uses MATLAB's
# rgb2lab constants where Octave's rgb2lab has slightly different ones (measured 3.4e-4).
RTOL = defaultdict(lambda: 1e-4, {"ciede2000": 2e-3})
# MAD is the slowest; the three sizes (square, odd, non-square with F=2) are covered.
SUBSET = {"mad": ("camera/dct40", "chelsea/noise10", "coffee/blur1.5")}


def _load_recipe():
    name = "qualitas_test_fr_make_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REFERENCE_DIR / "fr_make_reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def batches() -> list[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """Reference pairs grouped by size into (keys, dist, ref) batches (B,3,H,W) float32."""
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for key, (dist, ref) in _load_recipe().make_pairs().items():
        groups[dist.shape[:2]].append((key, dist, ref))
    out = []
    for items in groups.values():
        keys = [k for k, _, _ in items]

        def stack(i: int, items=items) -> torch.Tensor:
            return torch.from_numpy(np.stack([it[i] for it in items])).permute(0, 3, 1, 2).float() / 255.0

        out.append((keys, stack(1), stack(2)))
    return out


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_matches_official_implementation(name, batches):
    checked = 0
    for keys, dist, ref in batches:
        wanted = [i for i, k in enumerate(keys) if k in SUBSET.get(name, keys)]
        if not wanted:
            continue
        scores = FUNCTIONS[name](dist[wanted], ref[wanted])
        names = name.split("+")
        scores = scores.view(len(wanted), len(names))
        for i, row in zip(wanted, scores.tolist()):
            for metric, score in zip(names, row):
                expected = REFERENCE[keys[i]][metric]
                assert math.isfinite(expected)
                assert score == pytest.approx(expected, rel=RTOL[metric]), (metric, keys[i])
            checked += 1
    assert checked >= 3


def test_ciede2000_sharma_test_data():
    """Pairs from Sharma, Wu, Dalal (2005) Table 1 (Delta E to 4 decimals)."""
    pairs = [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
        ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, -1.0, 2.0), (50.0, 0.0, 0.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
        ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
        ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
        ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0000),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
        ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
        ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
    ]
    lab1 = torch.tensor([p[0] for p in pairs], dtype=torch.float64).T[:, :, None]  # (3, N, 1)
    lab2 = torch.tensor([p[1] for p in pairs], dtype=torch.float64).T[:, :, None]
    expected = torch.tensor([p[2] for p in pairs], dtype=torch.float64)
    got = delta_e2000(lab1, lab2)[:, 0]
    assert torch.allclose(got, expected, atol=5e-5, rtol=0)

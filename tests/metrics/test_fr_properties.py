"""Properties every full-reference metric of the library must have, on small real crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from qualitas.errors import MediaError
from qualitas.metrics import get_metric

NAMES = ["ciede2000", "cw_ssim", "fsim", "fsimc", "gmsd", "mad", "nlpd", "vif", "vifp", "vsi"]
# Score of a perfect copy.
PERFECT = {"ciede2000": 0.0, "cw_ssim": 1.0, "fsim": 1.0, "fsimc": 1.0, "gmsd": 0.0, "mad": 0.0,
           "nlpd": 0.0, "vif": 1.0, "vifp": 1.0, "vsi": 1.0}  # fmt: skip
SIZE = 128


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A textured 128x128 RGB crop of skimage's astronaut (face, helmet, flag), uint8 -> float64."""
    from skimage import data

    return data.astronaut()[60 : 60 + SIZE, 170 : 170 + SIZE].astype(np.float64)


def _t(*imgs: np.ndarray) -> torch.Tensor:
    return (
        torch.from_numpy(np.stack([np.clip(np.round(i), 0, 255) for i in imgs])).permute(0, 3, 1, 2).float()
        / 255
    )


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(img, sigma=(sigma, sigma, 0), mode="reflect")


def _noise(img: np.ndarray, sigma: float) -> np.ndarray:
    return img + np.random.default_rng(7).normal(0, sigma, img.shape)


def _better(name: str, a: float, b: float) -> bool:
    """True if score a is strictly better than score b for metric ``name``."""
    return a > b if get_metric(name).info.higher_is_better else a < b


@pytest.mark.parametrize("name", NAMES)
def test_identity_monotonicity_range_batching(name, crop):
    metric = get_metric(name)
    blurs = [_blur(crop, s) for s in (0.5, 1.0, 2.0, 3.0)]
    noises = [_noise(crop, s) for s in (3.0, 10.0, 25.0)]
    dists = [crop, *blurs, *noises]
    ref = _t(*[crop] * len(dists))
    scores = metric(_t(*dists), ref)
    assert scores.shape == (len(dists),) and scores.dtype == torch.float32
    s = scores.tolist()
    assert s[0] == pytest.approx(PERFECT[name], abs=1e-5)
    lo, hi = metric.info.range
    assert all(lo <= v <= hi for v in s), s
    # Strictly worse with every step of blur and of noise, and any distortion worse than none.
    for seq in (s[1:5], s[5:8]):
        assert all(_better(name, a, b) for a, b in zip(seq, seq[1:])), (name, seq)
    # MAD is exactly 0 for sub-threshold distortion (its detection map is all zero), so
    # the mildest blur and noise (sigma 0.5 and 3) tie with the perfect copy.
    mild = {1, 5} if name == "mad" else set()
    assert all(_better(name, s[0], v) or (i in mild and v == s[0]) for i, v in enumerate(s) if i), s
    # Batched scores equal one-at-a-time scores.
    single = torch.cat([metric(_t(d), _t(crop)) for d in (dists[2], dists[6])])
    assert torch.allclose(single, scores[[2, 6]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_one_line_media_errors(name):
    metric = get_metric(name)
    from qualitas.metrics.base import METRICS

    module = __import__(METRICS.get(name).__module__, fromlist=["MIN_SIZE"])
    n = max(module.MIN_SIZE, 2)
    ok = torch.rand(1, 3, n, n)
    assert torch.isfinite(metric(ok, ok.flip(-1))).all()
    if module.MIN_SIZE > 1:
        small = torch.rand(1, 3, n - 1, n + 5)
        with pytest.raises(MediaError, match=f"at least {module.MIN_SIZE}x{module.MIN_SIZE}") as err:
            metric(small, small)
        assert "\n" not in str(err.value)
    with pytest.raises(MediaError, match="RGB"):
        metric(torch.rand(1, 1, 80, 80), torch.rand(1, 1, 80, 80))
    with pytest.raises(MediaError, match="differ"):
        metric(torch.rand(1, 3, 80, 80), torch.rand(1, 3, 80, 96))


@pytest.mark.parametrize("name", ["vif", "vifp"])
def test_vif_rewards_contrast_enhancement_like_the_paper(name, crop):
    """VIF > 1 for a linear contrast stretch (a property specific to VIF, both variants)."""
    stretched = (crop - crop.mean()) * 1.15 + crop.mean()
    assert float(get_metric(name)(_t(stretched), _t(crop))) > 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name, crop):
    d, r = _t(_blur(crop, 1.5)), _t(crop)
    cpu = get_metric(name)(d, r)
    gpu = get_metric(name, device="cuda")(d, r).cpu()
    assert torch.allclose(cpu, gpu, rtol=1e-4, atol=1e-6)


def test_every_metric_module_declares_the_names_it_registers():
    """``qualitas.metrics`` declares each metric by name -> module (imported on first use): a
    module registering a name it does not declare would be missed by a run that asks for it."""
    import importlib
    import pkgutil

    import qualitas.metrics as package
    from qualitas.metrics.base import METRICS

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"qualitas.metrics.{info.name}")
    declared = METRICS.declared()
    assert set(METRICS.names()) == set(declared)
    for name, module in declared.items():
        assert METRICS.get(name).__module__ == module

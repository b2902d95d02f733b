"""NIQE, BRISQUE, PIQE: calibration against the official MATLAB code, properties, errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qualitas.errors import MediaError
from qualitas.functional.nss import SHAPE_GRID, _nearest_on_grid, _table, fit_aggd, fit_ggd
from qualitas.metrics import get_metric
from qualitas.metrics.brisque import brisque
from qualitas.metrics.niqe import niqe
from qualitas.metrics.piqe import piqe

REFERENCE_DIR = Path(__file__).parent / "reference_values"
METRICS = {"niqe": niqe, "brisque": brisque, "piqe": piqe}


def _recipes():
    name = "qualitas_test_nr_recipes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REFERENCE_DIR / "nr_make_reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # These metrics run many short whole-image reductions; on the shared 2-core test machine
    # each multi-threaded region waits for a busy core, so one thread is several times faster.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((REFERENCE_DIR / "nr_reference_values.json").read_text())


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return _recipes().make_images()


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H,W,3) -> (1,3,H,W) float32 in [0,1], as qualitas.io delivers frames."""
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


def _astronaut(size: int = 256) -> np.ndarray:
    from skimage import data

    return data.astronaut()[128 : 128 + size, 128 : 128 + size].astype(np.float64)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_matches_official_implementation(metric: str, reference: dict, images: dict) -> None:
    tol = reference["tolerance_relative"][metric]
    recipes = _recipes()
    worst = 0.0
    for name, entry in reference["images"].items():
        img = images[name]
        if recipes.digest(img) != entry["sha256"]:
            pytest.skip(f"{name}: skimage/numpy produced a different test image than the reference run")
        got = float(METRICS[metric](to_tensor(img))[0])
        want = entry[metric]
        rel = abs(got - want) / abs(want)
        worst = max(worst, rel)
        assert rel <= tol, f"{metric} on {name}: {got:.5f} vs official {want:.5f} ({rel:.2%} > {tol:.0%})"
    # Most images reproduce to float precision; ties at exactly-zero MSCN values in flat
    # regions are the only source of difference seen (<0.5%).
    assert worst < 0.005


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_monotone_in_blur(metric: str) -> None:
    from scipy.ndimage import gaussian_filter

    base = _astronaut()
    batch = []
    for sigma in (0.0, 1.0, 2.0, 3.0):
        img = base if sigma == 0 else np.stack([gaussian_filter(base[..., c], sigma) for c in range(3)], -1)
        batch.append(torch.from_numpy(np.round(img) / 255.0).permute(2, 0, 1))
    scores = METRICS[metric](torch.stack(batch)).tolist()
    assert all(a < b for a, b in zip(scores, scores[1:])), f"{metric} not increasing with blur: {scores}"


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_monotone_in_noise(metric: str) -> None:
    base = _astronaut()
    rng = np.random.default_rng(7)
    noise = rng.normal(size=base.shape)
    # PIQE's noise criterion only engages once noise dominates the texture, so its
    # sequence starts at a visible level (at std 5 it can even drop below the clean score).
    levels = (10.0, 20.0, 40.0) if metric == "piqe" else (0.0, 5.0, 10.0, 20.0)
    batch = [
        torch.from_numpy(np.clip(np.round(base + s * noise), 0, 255) / 255.0).permute(2, 0, 1) for s in levels
    ]
    scores = METRICS[metric](torch.stack(batch)).tolist()
    assert all(a < b for a, b in zip(scores, scores[1:])), f"{metric} not increasing with noise: {scores}"


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_batch_equals_single(metric: str) -> None:
    x = torch.from_numpy(_astronaut(192) / 255.0).permute(2, 0, 1)
    batch = torch.stack([x, x.flip(-1).contiguous()])
    together = METRICS[metric](batch)
    alone = torch.cat([METRICS[metric](batch[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(together, alone, rtol=1e-10, atol=1e-10)
    assert together.shape == (2,) and together.dtype == torch.float64


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_gray_input_equals_replicated_rgb(metric: str) -> None:
    gray = torch.from_numpy(_astronaut(160)[..., 1] / 255.0)[None, None]
    torch.testing.assert_close(METRICS[metric](gray), METRICS[metric](gray.expand(1, 3, -1, -1)))


def test_registry_properties() -> None:
    for name in METRICS:
        m = get_metric(name)
        assert m.info.name == name
        assert not m.info.full_reference and not m.info.higher_is_better
        x = torch.from_numpy(_astronaut(128) / 255.0).permute(2, 0, 1)[None].float()
        assert m(x).shape == (1,)


def test_piqe_flat_image_scores_100_and_range() -> None:
    flat = torch.full((1, 3, 64, 80), 0.5)
    assert float(piqe(flat)[0]) == pytest.approx(100.0)
    x = torch.from_numpy(_astronaut(100) / 255.0).permute(2, 0, 1)[None]  # padded to 112x112
    assert 0.0 <= float(piqe(x)[0]) <= 100.0


@pytest.mark.parametrize(
    ("metric", "shape"),
    [
        ("niqe", (1, 3, 95, 300)),
        ("niqe", (1, 3, 300, 80)),
        ("brisque", (1, 3, 15, 64)),
        ("piqe", (1, 2, 32, 32)),
    ],
)
def test_unusable_input_is_a_media_error(metric: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(MediaError, match=metric):
        METRICS[metric](torch.rand(shape))


def test_smallest_accepted_sizes() -> None:
    assert torch.isfinite(niqe(torch.rand(1, 3, 96, 96)))
    assert torch.isfinite(brisque(torch.rand(1, 3, 16, 16)))


def test_ggd_fit_recovers_known_shapes() -> None:
    rng = np.random.default_rng(0)
    gauss = torch.from_numpy(rng.normal(size=(2, 200_000)))
    lap = torch.from_numpy(rng.laplace(size=(1, 200_000)))
    shape, var = fit_ggd(torch.cat([gauss, lap]))
    np.testing.assert_allclose(shape.numpy(), [2.0, 2.0, 1.0], atol=0.05)
    np.testing.assert_allclose(var[:2].numpy(), [1.0, 1.0], atol=0.02)
    # AGGD with shape 1 and scales 1 (left), 3 (right): each side is exponential and the
    # right side carries 3/4 of the mass.
    mag = rng.exponential(size=400_000)
    right = rng.random(400_000) < 0.75
    skewed = torch.from_numpy(np.where(right, 3 * mag, -mag))[None]
    a, left, right = fit_aggd(skewed)
    assert float(a) == pytest.approx(1.0, abs=0.05)
    assert float(right / left) == pytest.approx(3.0, rel=0.02)


def test_grid_lookup_equals_brute_force_argmin() -> None:
    grid = _table("aggd_ratio", torch.zeros(1, dtype=torch.float64))
    assert bool((grid[1:] > grid[:-1]).all())  # the searchsorted lookup relies on this
    values = torch.cat(
        [torch.rand(2000, dtype=torch.float64) * 0.8, grid[::97], torch.tensor([float("nan")])]
    )
    fast = _nearest_on_grid(values, grid)
    brute = torch.argmin((grid[None, :] - values[:-1, None]).square(), dim=1)
    assert torch.equal(fast[:-1], brute)
    assert int(fast[-1]) == 0 and SHAPE_GRID[0] == 0.2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("metric", sorted(METRICS))
def test_cuda_matches_cpu(metric: str) -> None:
    x = torch.from_numpy(_astronaut(192) / 255.0).permute(2, 0, 1)[None].float()
    torch.testing.assert_close(METRICS[metric](x.cuda()).cpu(), METRICS[metric](x), rtol=1e-6, atol=1e-6)

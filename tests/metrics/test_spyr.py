"""The spatial steerable pyramid behind VIF (matlabPyrTools ``buildSpyr`` with ``sp5Filters``).

End-to-end agreement with the official code is tested through VIF (test_fr_reference.py);
these checks pin the pieces against independent definitions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from qualitas.functional.steerable import corr_dn_reflect1, max_spyr_height, sp5_filters, spyr_bands


def test_corr_dn_reflect1_is_mirror_correlation_then_subsampling():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(23, 30))
    filt = sp5_filters()["bands"][1].numpy()  # not symmetric: catches a flipped (convolved) kernel
    full = correlate(x, filt, mode="mirror")  # scipy's 'mirror' = 'reflect1': edge sample not repeated
    t = torch.from_numpy(x)[None, None]
    got = corr_dn_reflect1(t, torch.from_numpy(filt))[0, 0].numpy()
    np.testing.assert_allclose(got, full, rtol=0, atol=1e-12)
    got = corr_dn_reflect1(t, torch.from_numpy(filt), step=3, start=1)[0, 0].numpy()
    np.testing.assert_allclose(got, full[1::3, 1::3], rtol=0, atol=1e-12)


def test_sp5_filters_properties():
    f = sp5_filters()
    # Band filters are derivatives (zero DC); the oriented bands at 0 and 90 degrees are
    # transposes of each other up to sign; the low-passes keep DC (lo0 ~1, lo ~2 with the 2x).
    assert torch.allclose(f["bands"].sum(dim=(1, 2)), torch.zeros(6, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(f["bands"][3], -f["bands"][0].T)
    assert f["lo0"].sum().item() == pytest.approx(1.0, abs=1e-3)
    assert f["lo"].sum().item() == pytest.approx(2.0, abs=1e-3)


def test_pyramid_sizes_and_height_limit():
    assert max_spyr_height(72, 100) == 4 and max_spyr_height(71, 100) == 3
    x = torch.rand(2, 1, 75, 97, dtype=torch.float64)
    bands = spyr_bands(x, 4, (0, 3))
    assert [tuple(b.shape) for b in bands] == [(2, 2, 75, 97), (2, 2, 38, 49), (2, 2, 19, 25), (2, 2, 10, 13)]
    with pytest.raises(ValueError, match="cannot build 4 levels"):
        spyr_bands(torch.rand(1, 1, 71, 80, dtype=torch.float64), 4)

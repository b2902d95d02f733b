"""MATLAB-compatible imresize: hand-computed taps, Octave outputs, invariants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qualitas.functional.imresize import imresize, resize_contributions

REFERENCE = Path(__file__).parent / "reference_values" / "nr_reference_values.json"


def test_half_scale_taps_match_hand_computation() -> None:
    # Antialiased cubic at 0.5: kernel 0.5 * cubic(0.5 x), 8 non-zero taps; output 1 sits at
    # input coordinate 1.5 (1-based), so the taps sit at distances 3.5 .. -3.5.
    w, idx = resize_contributions(16, 8, 0.5)
    c = {0.25: 0.8671875, 0.75: 0.2265625, 1.25: -0.0703125, 1.75: -0.0234375}
    half = [0.5 * c[d] for d in (1.75, 1.25, 0.75, 0.25)]
    np.testing.assert_allclose(w[0], half + half[::-1], rtol=0, atol=1e-15)
    # Input indices -3..4 (1-based) mirror to 3,2,1,1,2,3,4,5 -> 0-based 2,1,0,0,1,2,3,4.
    assert idx[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]
    assert idx[3].tolist() == [3, 4, 5, 6, 7, 8, 9, 10]


def test_ramp_4x4_known_values() -> None:
    img = torch.arange(16, dtype=torch.float64).view(4, 4)
    # Worked by hand from the taps above (mirrored borders), equal to MATLAB/Octave output.
    expected_aa = torch.tensor([[2.3046875, 4.3828125], [10.6171875, 12.6953125]], dtype=torch.float64)
    expected_no_aa = torch.tensor([[2.1875, 4.3125], [10.6875, 12.8125]], dtype=torch.float64)
    torch.testing.assert_close(imresize(img, 0.5), expected_aa, rtol=0, atol=1e-12)
    torch.testing.assert_close(imresize(img, 0.5, antialiasing=False), expected_no_aa, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case_index", range(4))
def test_matches_octave_imresize(case_index: int) -> None:
    ref = json.loads(REFERENCE.read_text())["imresize"]
    case = ref["cases"][case_index]
    h, w = ref["input_shape"]
    x = torch.from_numpy((np.arange(h * w, dtype=np.float64) * 37 % 101).reshape(h, w))
    if "scale" in case:
        out = imresize(x, case["scale"])
    else:
        out = imresize(x, size=tuple(case["size"]))
    expected = torch.tensor(case["output"], dtype=torch.float64)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-9)


def test_taps_are_normalised_for_any_shrink() -> None:
    # MATLAB divides the taps by their sum; for factors other than 1/k they do not sum to 1
    # on their own (Octave's imresize skips this step, so it is no reference there).
    w, idx = resize_contributions(9, 4, 4 / 9)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    assert idx.min() >= 0 and idx.max() < 9
    x = torch.full((7, 9), 3.25, dtype=torch.float64)
    torch.testing.assert_close(imresize(x, size=(5, 4)), torch.full((5, 4), 3.25, dtype=torch.float64))


def test_interior_of_a_linear_ramp_is_preserved() -> None:
    # The cubic kernel reproduces linear functions, so away from the mirrored borders the
    # half-scale output samples the ramp at u = 2i - 0.5 (1-based).
    x = torch.arange(64, dtype=torch.float64).view(1, 64).expand(3, 64).contiguous()
    out = imresize(x, 0.5)
    u = 2 * torch.arange(1, 33, dtype=torch.float64) - 0.5 - 1  # 0-based ramp value
    torch.testing.assert_close(out[0, 4:-4], u[4:-4], rtol=0, atol=1e-12)


def test_batched_and_dtype() -> None:
    x = torch.rand(2, 3, 20, 30, dtype=torch.float64)
    out = imresize(x, 0.5)
    assert out.shape == (2, 3, 10, 15)
    torch.testing.assert_close(out[1, 2], imresize(x[1, 2], 0.5))
    assert imresize(x.float(), 0.5).dtype == torch.float32


def test_bad_arguments() -> None:
    x = torch.rand(8, 8)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x)
    with pytest.raises(ValueError, match="> 0"):
        imresize(x, -1.0)
    with pytest.raises(ValueError, match="kernel"):
        imresize(x, 0.5, kernel="lanczos9")

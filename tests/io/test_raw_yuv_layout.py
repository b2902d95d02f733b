"""A raw YUV file read with a wrong --pix-fmt whose frame size happens to fit is warned about."""

from __future__ import annotations

import numpy as np
import pytest

from qualitas.io.yuv import RawYUVSpec, layout_warnings

W, H = 64, 48


def scene_frames(n: int, width: int, height: int) -> np.ndarray:
    """A slow pan across scikit-image's astronaut photo (real content, smooth in time)."""
    from skimage import data

    img = data.astronaut()
    return np.stack([img[2 * i : 2 * i + height, 3 * i : 3 * i + width] for i in range(n)])


def _planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return y, u, v


def _write(path, fmt: str, n: int = 8) -> None:
    chunks = []
    for rgb in scene_frames(n, W, H):
        y, u, v = _planes(rgb)
        if fmt.startswith("yuv420p"):
            u, v = (p.reshape(H // 2, 2, W // 2, 2).mean(axis=(1, 3)) for p in (u, v))
        planes = [y, u, v]
        if fmt.endswith("10le"):
            chunks += [np.round(p * 4).astype("<u2").tobytes() for p in planes]
        else:
            chunks += [np.round(p).astype(np.uint8).tobytes() for p in planes]
    path.write_bytes(b"".join(chunks))


@pytest.mark.parametrize(
    "written, declared, words",
    [
        ("yuv444p", "yuv420p", "contrast jumps"),
        ("yuv420p", "yuv420p10le", "do not fit 10 bits"),
        ("yuv420p10le", "yuv420p", "every second luma byte"),
    ],
)
def test_wrong_pix_fmt_that_fits_the_byte_count_is_warned(tmp_path, written, declared, words):
    path = tmp_path / "clip.yuv"
    _write(path, written)
    assert layout_warnings(path, RawYUVSpec(W, H, pix_fmt=written)) == []  # the truth: silent
    warnings = layout_warnings(path, RawYUVSpec(W, H, pix_fmt=declared))
    assert len(warnings) == 1 and words in warnings[0] and "--pix-fmt" in warnings[0]


def test_score_reports_the_warning_as_a_note(tmp_path):
    from qualitas.runtime.score import Pair, ScoreOptions, score_pairs

    path = tmp_path / "clip.yuv"
    _write(path, "yuv444p", n=4)
    spec = RawYUVSpec(W, H, pix_fmt="yuv420p")
    (r,), _ = score_pairs([Pair(str(path), str(path))], ["psnr"], ScoreOptions(yuv=spec))
    assert r.error is None and any(n.startswith("raw YUV: luma contrast jumps") for n in r.notes)
    assert any(n.startswith("reference raw YUV:") for n in r.notes)

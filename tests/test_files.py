"""Atomic writes keep the permissions a plain open() would give (umask respected, not 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from qualitas.data.manifest import atomic_write_text
from qualitas.files import current_umask, plain_mode


@pytest.fixture
def umask():
    """Set the umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o027])
def test_atomic_text_and_png_follow_the_umask(tmp_path, umask, mask):
    from qualitas.evaluation.plots import scatter

    umask(mask)
    assert current_umask() == mask
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as fh:
        fh.write("x")
    atomic_write_text(tmp_path / "out.json", "{}\n")
    rng = np.random.default_rng(0)
    scatter(rng.random(20), rng.random(20), tmp_path / "fig.png")
    assert _mode(tmp_path / "out.json") == _mode(plain) == 0o666 & ~mask
    assert _mode(tmp_path / "fig.png") == 0o666 & ~mask


def test_replacing_a_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "scores.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640 == plain_mode(target)


def test_score_out_is_not_private(tmp_path, umask, make_image):
    from qualitas.cli.main import main

    umask(0o022)
    img = make_image("a.png")
    out = tmp_path / "s.json"
    assert main(["score", str(img), "--ref", str(img), "--metric", "psnr", "--out", str(out), "--quiet"]) == 0
    assert _mode(out) == 0o644

"""No silent NaN: identical inputs get the perfect score, other undefined values a note."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from qualitas.cli.main import main
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs


@pytest.fixture
def flat(tmp_path):
    def make(name, value, size=128):
        path = tmp_path / name
        Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
        return str(path)

    return make


@pytest.mark.parametrize("metric", ["fsim", "fsimc", "vsi", "cw_ssim"])
def test_flat_image_against_itself_scores_perfect(flat, metric):
    from qualitas.io.image import read_image
    from qualitas.metrics import get_metric

    img = flat("gray.png", 128)
    x = read_image(img).data.unsqueeze(0)
    assert math.isnan(float(get_metric(metric)(x, x)[0]))  # the metric itself: 0/0
    (r,), _ = score_pairs([Pair(img, img)], [metric], ScoreOptions())
    assert r.scores[metric] == 1.0 and r.notes == [] and r.error is None


def test_undefined_scores_stay_nan_with_a_note(flat, capsys):
    gray, black = flat("gray.png", 128), flat("black.png", 0)
    (fr,), _ = score_pairs([Pair(gray, black)], ["fsim", "vsi", "psnr"], ScoreOptions())
    assert math.isnan(fr.scores["fsim"]) and math.isnan(fr.scores["vsi"]) and fr.scores["psnr"] < 10
    assert sorted(n.split()[0] for n in fr.notes) == ["fsim", "vsi"] and all("NaN" in n for n in fr.notes)
    assert main(["score", gray, "--metric", "niqe,brisque", "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert "niqe is NaN" in err and "brisque is NaN" in err


def test_nan_frames_of_a_video_are_counted_in_a_note(tmp_path):
    from media_helpers import write_video

    frames = np.full((3, 64, 64, 3), 90, np.uint8)
    frames[1] = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    path = write_video(tmp_path / "v.mp4", frames, crf=0)
    (r,), _ = score_pairs([Pair(str(path))], ["brisque"], ScoreOptions(), has_ref=False)
    nan_frames = sum(math.isnan(f.scores["brisque"]) for f in r.frames)
    assert nan_frames >= 1
    assert any(n.startswith(f"brisque is NaN on {nan_frames} of 3 frames") for n in r.notes)


def test_brisque_range_holds_its_values():
    # A checkerboard scores ~153 (the SVR is not bounded): the stated range must include it.
    import torch

    from qualitas.metrics import get_metric

    yy, xx = np.mgrid[0:128, 0:128]
    board = torch.tensor(((xx // 8 + yy // 8) % 2).astype("float32")).expand(1, 3, 128, 128).contiguous()
    metric = get_metric("brisque")
    value = float(metric(board, None)[0])
    lo, hi = metric.info.range
    assert value > 100 and lo <= value <= hi

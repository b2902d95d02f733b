"""One clear line per user mistake: model flags, model names given as metrics, tiny inputs, paths once."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from qualitas.cli.main import main


def test_model_given_twice_is_refused(make_image, capsys):
    img = str(make_image("a.png"))
    assert main(["score", img, "--model", "nr-image", "--model", "nr-video"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model was given more than once" in err[0]


def test_model_name_given_as_a_metric_points_at_model(make_image, capsys):
    img = str(make_image("a.png"))
    assert main(["score", img, "--metric", "nr-image"]) == 2
    err = capsys.readouterr().err
    assert "'nr-image' is a model, not a metric: score with --model nr-image" in err and "niqe" not in err


def test_one_pixel_image_is_refused_by_the_image_model(tmp_path, make_image, capsys):
    px = tmp_path / "px.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(px)
    ok = make_image("ok.png")
    out = tmp_path / "s.json"
    assert main(["score", str(px), str(ok), "--model", "nr-image", "--out", str(out), "--quiet"]) == 1
    bad, good = json.loads(out.read_text())["results"]
    assert bad["error"] == "nr-image needs images at least 96x96 pixels, got 1x1"
    assert good["error"] is None and good["scores"]["nr-image"] > 0


def test_raw_yuv_without_size_and_truncated_video_name_the_path_once(tmp_path, capsys):
    from media_helpers import write_video

    raw = tmp_path / "clip.yuv"
    raw.write_bytes(b"\0" * 100)
    frames = np.random.default_rng(0).integers(0, 255, (30, 64, 64, 3), np.uint8)
    full = write_video(tmp_path / "full.mp4", frames, faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full[: len(full) // 2])
    assert main(["score", str(cut), str(raw), "--model", "nr-video"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    lines = [e for e in err if "cut.mp4" in e or "clip.yuv" in e]
    assert len(lines) == 2
    for line in lines:
        assert "RawYUVSpec" not in line and "Errno" not in line
        assert line.count("cut.mp4") + line.count("clip.yuv") == 1, line
    assert any("truncated" in line for line in lines) and any("--size" in line for line in lines)

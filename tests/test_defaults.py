"""The shipped default models (nr-image, nr-video): files, name resolution, CLI defaults,
and that each ranks a clean input above a clearly degraded version of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from qualitas.errors import UsageError
from qualitas.runtime import defaults

skimage_data = pytest.importorskip("skimage.data")


def test_weights_are_shipped_and_small():
    for name in defaults.DEFAULT_MODELS:
        folder = defaults.weights_dir() / name
        card = json.loads((folder / "model.json").read_text())
        assert card["name"] == name
        assert card["full_reference"] is False
        assert card["video"] is (name == "nr-video")
        assert card["export"]["format"] == "onnx"
        assert (folder / card["export"]["file"]).is_file()
        held = json.loads((folder / "heldout.json").read_text())
        assert held["overall"]["n"] > 0
        assert sum(f.stat().st_size for f in folder.iterdir()) < 25 * 2**20  # each model <= 25 MB


def test_names_resolve_to_the_shipped_cards(tmp_path, monkeypatch):
    for name in defaults.DEFAULT_MODELS:
        assert Path(defaults.resolve_model(name)) == defaults.weights_dir() / name / "model.json"
    assert defaults.resolve_model("runs/x/export") == "runs/x/export"  # paths pass through
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nr-image").mkdir()  # an existing folder of that name wins
    assert defaults.resolve_model("nr-image") == "nr-image"
    with pytest.raises(UsageError, match="unknown default model 'nr-audio'"):
        defaults.default_model_path("nr-audio")


def test_default_model_per_media_kind():
    assert defaults.default_model_for(["image", "image"]) == "nr-image"
    assert defaults.default_model_for(["video"]) == "nr-video"
    with pytest.raises(UsageError, match="images and videos together"):
        defaults.default_model_for(["image", "video"])
    pairs = [SimpleNamespace(dist="a.mp4", error=None), SimpleNamespace(dist="b.png", error="missing")]
    assert defaults.default_model_for_pairs(pairs) == "nr-video"


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strong blur + noise: a distortion every teacher in the ladder scores far lower."""
    from PIL import Image, ImageFilter

    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(4)), dtype=np.float64)
    return np.clip(blurred + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)


def test_nr_image_ranks_clean_above_degraded():
    import torch

    model = defaults.load_default("nr-image")
    rng = np.random.default_rng(0)
    for name in ("astronaut", "chelsea", "coffee"):
        img = np.asarray(getattr(skimage_data, name)())
        clean, bad = (torch.from_numpy(x).permute(2, 0, 1).float() / 255 for x in (img, _degrade(img, rng)))
        s_clean, s_bad = model.score(clean), model.score(bad)
        assert 0 <= s_bad < s_clean <= 120, (
            name,
            s_clean,
            s_bad,
        )  # not clipped: pristine can extrapolate past 100
        assert s_clean - s_bad > 10, (name, s_clean, s_bad)


def _pan_clip(path: Path, crf: int) -> None:
    from qualitas.demo import encode, pan_frames

    frames = pan_frames(np.asarray(skimage_data.coffee()), 16, (180, 320))
    encode(frames, path, {"crf": str(crf), "preset": "veryfast"})


def test_nr_video_ranks_clean_above_compressed(tmp_path):
    _pan_clip(tmp_path / "clean.mp4", 10)
    _pan_clip(tmp_path / "bad.mp4", 48)
    model = defaults.load_default("nr-video")
    s_clean = model.score_files(tmp_path / "clean.mp4").pooled
    s_bad = model.score_files(tmp_path / "bad.mp4").pooled
    assert s_clean - s_bad > 10, (s_clean, s_bad)


def test_score_cli_uses_the_default_model_of_the_kind(tmp_path):
    from PIL import Image

    Image.fromarray(np.asarray(skimage_data.chelsea())).save(tmp_path / "cat.png")
    out = tmp_path / "scores.json"
    cmd = [sys.executable, "-m", "qualitas", "score", str(tmp_path / "cat.png"), "--out", str(out), "--quiet"]
    subprocess.run(cmd, check=True)
    data = json.loads(out.read_text())
    assert list(data["metrics"]) == ["nr-image"]
    assert 0 < data["results"][0]["scores"]["nr-image"] <= 110
    subprocess.run([*cmd, "--model", "nr-image"], check=True)
    again = json.loads(out.read_text())["results"][0]["scores"]["nr-image"]
    assert again == pytest.approx(data["results"][0]["scores"]["nr-image"])
